package passport.clients;

import java.util.Map;
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
 * GetCallerIdentity is called with them (see Probe, in the common module). The STS endpoint
 * comes from AWS_ENDPOINT_URL_STS, which this SDK reads by itself. Prints one JSON line;
 * exit 1 on failure.
 */
public final class Main {
    public static void main(String[] args) {
        String which = args.length == 1 ? args[0] : "";
        AwsCredentialsProvider provider;
        String entry;
        switch (which) {
            case "default": provider = DefaultCredentialsProvider.builder().build(); entry = "DefaultCredentialsProvider"; break;
            case "container": provider = ContainerCredentialsProvider.builder().build(); entry = "ContainerCredentialsProvider"; break;
            case "instance": provider = InstanceProfileCredentialsProvider.builder().build(); entry = "InstanceProfileCredentialsProvider"; break;
            default:
                System.err.println("usage: Main default|container|instance");
                System.exit(64);
                return;
        }
        Map<String, Object> r = Probe.result("aws-sdk-java-v2", VersionInfo.SDK_VERSION, entry);
        Probe.finish(r, result -> {
            Probe.readConcurrently(result, () -> provider.resolveCredentials().accessKeyId());
            AwsCredentials creds = provider.resolveCredentials();
            result.put("provider", providerName(creds.providerName().orElse("?")));
            result.put("access_key_id", creds.accessKeyId());
            try (StsClient sts = StsClient.builder().credentialsProvider(provider).build()) {
                GetCallerIdentityResponse id = sts.getCallerIdentity();
                result.put("account", id.account());
                result.put("user_id", id.userId());
                result.put("arn", id.arn());
            }
        });
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
}
