// sdkclient-legacy: aws-sdk-go v1.15.78 (November 2018), a release from before the SDK
// learned web identity (v1.21.0), reads credentials through session.NewSession() and calls
// STS GetCallerIdentity. It knows only its era's variables:
//
//   - token-env level: AWS_CONTAINER_CREDENTIALS_FULL_URI with the auth token as a value in
//     AWS_CONTAINER_AUTHORIZATION_TOKEN (since v1.15.41; the _FILE variable came in v1.47.11);
//   - relative-uri level: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, host fixed at
//     169.254.170.2 (needs a network namespace with the redirect);
//   - imds level: IMDSv1 at 169.254.169.254 only (no endpoint variable before v1.34.14, no
//     IMDSv2 before v1.25.38).
//
// Which one it uses is the environment's choice, as in a pod. This release has no
// AWS_ENDPOINT_URL_STS: the probe passes that variable to sts.New as aws.Config.Endpoint.
// CLIENT_READERS goroutines each read the credentials CLIENT_READS times first.
//
// The probe is ../go's `sdkclient v1`, the same source (../go-probe/sdkv1), linked against
// the 2018 release: a module can require one version of aws-sdk-go only, so this is a
// separate module.
package main

import (
	"passport.test/clients/probe"
	"passport.test/clients/probe/sdkv1"
)

func main() {
	probe.Emit(sdkv1.Run(probe.EnvInt("CLIENT_READERS", 1), probe.EnvInt("CLIENT_READS", 1), false))
}
