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
import java.util.Map;

/**
 * AWS SDK for Java 1.x against passport through DefaultAWSCredentialsProviderChain,
 * configured by the environment alone. The same source is compiled against 1.12.x (sdk-v1)
 * and a 2018 1.11.x (sdk-v1-2018). CLIENT_READERS threads read the credentials
 * CLIENT_READS times each, then STS GetCallerIdentity is called with them (see Probe, in
 * the common module).
 *
 * <p>STS endpoint: SDK 1.x has no AWS_ENDPOINT_URL_STS; this program reads the variable
 * and passes it to the client builder's withEndpointConfiguration. Prints one JSON line.
 */
public final class Main {
    public static void main(String[] args) {
        Map<String, Object> r = Probe.result("aws-java-sdk", VersionInfoUtils.getVersion(), "DefaultAWSCredentialsProviderChain");
        DefaultAWSCredentialsProviderChain chain = DefaultAWSCredentialsProviderChain.getInstance();
        Probe.finish(r, result -> {
            Probe.readConcurrently(result, () -> chain.getCredentials().getAWSAccessKeyId());
            AWSCredentials creds = chain.getCredentials();
            result.put("provider", lastUsed(chain));
            result.put("access_key_id", creds.getAWSAccessKeyId());
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
            result.put("account", id.getAccount());
            result.put("user_id", id.getUserId());
            result.put("arn", id.getArn());
        });
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
}
