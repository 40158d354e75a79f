package passport.clients;

import com.amazonaws.auth.AWSCredentials;
import com.amazonaws.auth.AWSCredentialsProvider;
import com.amazonaws.auth.AWSCredentialsProviderChain;
import com.amazonaws.auth.DefaultAWSCredentialsProviderChain;
import com.amazonaws.client.builder.AwsClientBuilder.EndpointConfiguration;
import com.amazonaws.services.securitytoken.AWSSecurityTokenService;
import com.amazonaws.services.securitytoken.AWSSecurityTokenServiceClientBuilder;
import com.amazonaws.services.securitytoken.model.GetCallerIdentityRequest;
import com.amazonaws.services.securitytoken.model.GetCallerIdentityResult;
import com.amazonaws.util.VersionInfoUtils;
import java.lang.reflect.Field;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

/**
 * AWS SDK for Java 1.x against passport through DefaultAWSCredentialsProviderChain,
 * configured by the environment alone. The same source is compiled against 1.12.x (sdk-v1)
 * and a 2018 1.11.x (sdk-v1-2018). CLIENT_READERS threads read the credentials
 * CLIENT_READS times each, then STS GetCallerIdentity is called with them.
 *
 * <p>STS endpoint: SDK 1.x has no AWS_ENDPOINT_URL_STS; this program reads the variable
 * and passes it to the client builder's withEndpointConfiguration. Prints one JSON line.
 */
public final class Main {
    public static void main(String[] args) throws Exception {
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("sdk", "aws-java-sdk");
        r.put("version", VersionInfoUtils.getVersion());
        r.put("entry", "DefaultAWSCredentialsProviderChain");
        DefaultAWSCredentialsProviderChain chain = DefaultAWSCredentialsProviderChain.getInstance();
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
                            keys.add(chain.getCredentials().getAWSAccessKeyId());
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
            AWSCredentials creds = chain.getCredentials();
            r.put("provider", lastUsed(chain));
            r.put("access_key_id", creds.getAWSAccessKeyId());
            String region = System.getenv().getOrDefault("AWS_REGION", "us-east-1");
            AWSSecurityTokenServiceClientBuilder builder = AWSSecurityTokenServiceClientBuilder.standard().withCredentials(chain);
            String endpoint = System.getenv("AWS_ENDPOINT_URL_STS");
            if (endpoint != null && !endpoint.isEmpty()) {
                builder.withEndpointConfiguration(new EndpointConfiguration(endpoint, region));
            } else {
                builder.withRegion(region);
            }
            AWSSecurityTokenService sts = builder.build();
            GetCallerIdentityResult id = sts.getCallerIdentity(new GetCallerIdentityRequest());
            r.put("account", id.getAccount());
            r.put("user_id", id.getUserId());
            r.put("arn", id.getArn());
        } catch (Throwable t) {
            r.put("error", t.getClass().getSimpleName() + ": " + t.getMessage());
        }
        System.out.println(Json.object(r));
        System.exit(r.containsKey("error") ? 1 : 0);
    }

    /** The provider in the chain that answered (SDK 1.x keeps it in a private field). */
    static String lastUsed(AWSCredentialsProviderChain chain) {
        try {
            Field f = AWSCredentialsProviderChain.class.getDeclaredField("lastUsedProvider");
            f.setAccessible(true);
            AWSCredentialsProvider p = (AWSCredentialsProvider) f.get(chain);
            return p == null ? "?" : p.getClass().getSimpleName();
        } catch (ReflectiveOperationException | RuntimeException e) {
            return "?";
        }
    }

    static int envInt(String name) {
        try {
            return Math.max(1, Integer.parseInt(System.getenv().getOrDefault(name, "1")));
        } catch (NumberFormatException e) {
            return 1;
        }
    }
}
