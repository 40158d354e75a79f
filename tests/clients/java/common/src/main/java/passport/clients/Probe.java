package passport.clients;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The SDK-independent half of every Java client program: the result fields, CLIENT_READERS
 * threads reading the credentials CLIENT_READS times each (the single-flight check), and
 * the one JSON line on stdout with exit 1 on failure. Each SDK module's Main supplies the
 * SDK-specific steps.
 */
public final class Probe {
    private Probe() {}

    /** What a program does with the SDK, filling in the result; any throw is the error. */
    public interface Steps {
        void run(Map<String, Object> result) throws Throwable;
    }

    /** A result naming the SDK, its version and the entry point the program uses. */
    public static Map<String, Object> result(String sdk, String version, String entry) {
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("sdk", sdk);
        r.put("version", version);
        r.put("entry", entry);
        return r;
    }

    /** Runs the steps, prints the result as one JSON line, exits 0, or 1 with an error. */
    public static void finish(Map<String, Object> r, Steps steps) {
        try {
            steps.run(r);
        } catch (Throwable t) {
            r.put("error", t.getClass().getSimpleName() + ": " + t.getMessage());
        }
        System.out.println(Json.object(r));
        System.exit(r.containsKey("error") ? 1 : 0);
    }

    /**
     * CLIENT_READERS threads, started together, each call {@code accessKeyId}
     * CLIENT_READS times; records "reads" and "distinct_keys" and rethrows the first failure.
     */
    public static void readConcurrently(Map<String, Object> r, Callable<String> accessKeyId) throws Throwable {
        int readers = envInt("CLIENT_READERS"), reads = envInt("CLIENT_READS");
        Set<String> keys = ConcurrentHashMap.newKeySet();
        AtomicInteger ok = new AtomicInteger();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        CountDownLatch start = new CountDownLatch(1);
        Thread[] threads = new Thread[readers];
        for (int i = 0; i < readers; i++) {
            threads[i] = new Thread(() -> {
                try {
                    start.await();
                    for (int j = 0; j < reads; j++) {
                        keys.add(accessKeyId.call());
                        ok.incrementAndGet();
                    }
                } catch (Throwable t) {
                    failure.compareAndSet(null, t);
                }
            });
            threads[i].start();
        }
        start.countDown();
        for (Thread t : threads) t.join();
        r.put("reads", ok.get());
        r.put("distinct_keys", keys.size());
        if (failure.get() != null) throw failure.get();
    }

    /** A positive integer from the environment, 1 when unset or not a number. */
    static int envInt(String name) {
        try {
            return Math.max(1, Integer.parseInt(System.getenv().getOrDefault(name, "1")));
        } catch (NumberFormatException e) {
            return 1;
        }
    }
}
