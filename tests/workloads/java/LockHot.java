// A hot java.util.concurrent.locks.ReentrantLock and a hot synchronized
// block, each contended by THREADS threads ("cache-N" and "ledger-N") for
// SECONDS. HotSpot parks each waiting thread on its own word (its Parker
// for ReentrantLock, its ParkEvent for a monitor), not on the lock.
// Prints "pid=P", waits for a byte on stdin, runs, prints
// "juc=N monitor=N" (acquisitions), then waits for a second byte (or end
// of input) before exiting, so the JVM's own counters can be read.
//
//   java LockHot THREADS SECONDS
import java.util.concurrent.locks.ReentrantLock;

public class LockHot {
    // Fair: each acquire under contention is a handoff, so waiters park.
    static final ReentrantLock cacheLock = new ReentrantLock(true);
    static final Object ledgerMonitor = new Object();
    static long cacheValue, ledgerValue;
    static volatile boolean stop;
    static volatile long sink;

    static void cachePut() {
        cacheLock.lock();
        try {
            cacheValue++;
            spin(CACHE_SPIN);
        } finally {
            cacheLock.unlock();
        }
    }

    static void ledgerPost() {
        synchronized (ledgerMonitor) {
            ledgerValue++;
            spin(LEDGER_SPIN);
        }
    }

    static final int CACHE_SPIN = Integer.getInteger("cacheSpin", 300);
    static final int LEDGER_SPIN = Integer.getInteger("ledgerSpin", 3000);

    static void spin(int n) {
        for (int k = 0; k < n; k++) sink += k;
    }

    public static void main(String[] args) throws Exception {
        int n = Integer.parseInt(args[0]);
        long millis = (long) (Double.parseDouble(args[1]) * 1000);
        System.out.println("pid=" + ProcessHandle.current().pid());
        System.out.flush();
        if (System.in.read() < 0) System.exit(3);
        Thread[] t = new Thread[2 * n];
        for (int i = 0; i < n; i++) {
            t[i] = new Thread(() -> { while (!stop) { cachePut(); spin(CACHE_SPIN); } }, "cache-" + i);
            t[n + i] = new Thread(() -> { while (!stop) { ledgerPost(); spin(LEDGER_SPIN); } }, "ledger-" + i);
        }
        boolean juc = !"monitor".equals(System.getProperty("only"));
        boolean monitor = !"juc".equals(System.getProperty("only"));
        for (int i = 0; i < n; i++) {
            if (juc) t[i].start();
            if (monitor) t[n + i].start();
        }
        Thread.sleep(millis);
        stop = true;
        for (Thread x : t) if (x.getState() != Thread.State.NEW) x.join();
        System.out.println("juc=" + cacheValue + " monitor=" + ledgerValue);
        System.out.flush();
        System.in.read();
    }
}
