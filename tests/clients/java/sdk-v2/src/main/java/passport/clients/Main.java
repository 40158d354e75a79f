package passport.clients;

import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.LinkedHashMap;
import software.amazon.awssdk.auth.credentials.AwsCredentials;
import software.amazon.awssdk.auth.credentials.AwsCredentialsProvider;
import software.amazon.awssdk.auth.credentials.ContainerCredentialsProvider;
import software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider;
import software.amazon.awssdk.auth.credentials.InstanceProfileCredentialsProvider;
import software.amazon.awssdk.core.useragent.BusinessMetricFeatureId;
import software.amazon.awssdk.core.util.VersionInfo;
import software.amazon.awssdk.services.sts.StsClient;
import software.amazon.awssdk.services.sts.model.GetCallerIdentityResponse;

/**
 * AWS SDK for Java 2.x against passport: one credentials provider, chosen by the argument
 * ({@code default}: DefaultCredentialsProvider, {@code container}: ContainerCredentialsProvider,
 * {@code instance}: InstanceProfileCredentialsProvider), configured by the environment alone.
 * CLIENT_READERS threads read the credentials CLIENT_READS times each, then STS
 * GetCallerIdentity is called with them. The STS endpoint comes from AWS_ENDPOINT_URL_STS,
 * which this SDK reads by itself. Prints one JSON line; exit 1 on failure.
 */
public final class Main {
    public static void main(String[] args) throws Exception {
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("sdk", "aws-sdk-java-v2");
        r.put("version", VersionInfo.SDK_VERSION);
        String which = args.length == 1 ? args[0] : "";
        AwsCredentialsProvider provider;
        switch (which) {
            case "default": provider = DefaultCredentialsProvider.builder().build(); r.put("entry", "DefaultCredentialsProvider"); break;
            case "container": provider = ContainerCredentialsProvider.builder().build(); r.put("entry", "ContainerCredentialsProvider"); break;
            case "instance": provider = InstanceProfileCredentialsProvider.builder().build(); r.put("entry", "InstanceProfileCredentialsProvider"); break;
            default:
                System.err.println("usage: Main default|container|instance");
                System.exit(64);
                return;
        }
        try {
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
                            keys.add(provider.resolveCredentials().accessKeyId());
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
            AwsCredentials creds = provider.resolveCredentials();
            r.put("provider", providerName(creds.providerName().orElse("?")));
            r.put("access_key_id", creds.accessKeyId());
            try (StsClient sts = StsClient.builder().credentialsProvider(provider).build()) {
                GetCallerIdentityResponse id = sts.getCallerIdentity();
                r.put("account", id.account());
                r.put("user_id", id.userId());
                r.put("arn", id.arn());
            }
        } catch (Throwable t) {
            r.put("error", t.getClass().getSimpleName() + ": " + t.getMessage());
        }
        System.out.println(Json.object(r));
        System.exit(r.containsKey("error") ? 1 : 0);
    }

    /**
     * 2.59 reports the source of credentials as a business-metric feature id ("z", "0"):
     * name it after its BusinessMetricFeatureId constant (CREDENTIALS_HTTP, CREDENTIALS_IMDS).
     */
    static String providerName(String code) {
        for (BusinessMetricFeatureId id : BusinessMetricFeatureId.values()) {
            if (id.value().equals(code)) return id.name();
        }
        return code;
    }

    static int envInt(String name) {
        try {
            return Math.max(1, Integer.parseInt(System.getenv().getOrDefault(name, "1")));
        } catch (NumberFormatException e) {
            return 1;
        }
    }
}
