// irsa-validator: an identity validator in the spirit of the Go IRSA demo this project grew
// from. It checks the pod's environment, then asks both AWS SDKs for Go for their default
// credentials and calls STS GetCallerIdentity through each, printing Account, UserId, Arn,
// the credentials' provider name and access key id (never the secret).
//
// Two modes, recognised from the environment:
//
//   - native IRSA: AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN are set; each SDK exchanges
//     the token with STS itself (AssumeRoleWithWebIdentity).
//   - passport: AWS_CONTAINER_CREDENTIALS_FULL_URI is set (with the auth token as a file or
//     a value); each SDK fetches what the passport sidecar serves. The web-identity
//     variables must then be absent: every SDK prefers them to the container endpoint.
//
// STS endpoint: aws-sdk-go-v2 honours AWS_ENDPOINT_URL_STS by itself (for the
// AssumeRoleWithWebIdentity call too). aws-sdk-go v1 has no such variable; the validator
// hands it to session.NewSession as aws.Config.Endpoint, which v1 also uses for its
// web-identity STS client.
//
// Exit 0 only if the environment is consistent and both SDKs got an identity. With -json
// the last line of output is a JSON object with the same facts, for the test harness.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"passport.test/clients/go/internal/sdkv2"
	"passport.test/clients/probe"
	"passport.test/clients/probe/sdkv1"
)

type report struct {
	Mode     string         `json:"mode"`
	Problems []string       `json:"problems"`
	SDKs     []probe.Result `json:"sdks"`
}

func main() {
	asJSON := len(os.Args) == 2 && os.Args[1] == "-json"
	if len(os.Args) > 2 || (len(os.Args) == 2 && !asJSON) {
		fmt.Fprintln(os.Stderr, "usage: irsa-validator [-json]")
		os.Exit(64)
	}
	rep := report{Problems: []string{}}
	fmt.Println("Environment")
	rep.Mode = checkEnv(&rep.Problems)
	fmt.Printf("  mode: %s\n", rep.Mode)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// One read each; v1 gets the STS endpoint in its session, for its web-identity call.
	for _, r := range []probe.Result{sdkv1.Run(1, 1, true), sdkv2.Run(ctx, 1, 1)} {
		fmt.Printf("%s %s (%s)\n", r.SDK, r.Version, r.Entry)
		if r.Error != "" {
			fmt.Printf("  ✗ %s\n", r.Error)
		} else {
			fmt.Printf("  Account:     %s\n  UserId:      %s\n  Arn:         %s\n  Provider:    %s\n  AccessKeyId: %s\n",
				r.Account, r.UserID, r.Arn, r.Provider, r.AccessKeyID)
		}
		rep.SDKs = append(rep.SDKs, r)
	}
	failed := len(rep.Problems) > 0
	for _, r := range rep.SDKs {
		failed = failed || r.Error != ""
	}
	if !failed && rep.SDKs[0].Arn != rep.SDKs[1].Arn {
		rep.Problems = append(rep.Problems, "the two SDKs got different identities")
		failed = true
	}
	if failed {
		fmt.Println("RESULT: FAILED")
	} else {
		fmt.Printf("RESULT: both SDKs are %s\n", rep.SDKs[0].Arn)
	}
	if asJSON {
		out, _ := json.Marshal(rep)
		fmt.Println(string(out))
	}
	if failed {
		os.Exit(1)
	}
}

// checkEnv prints the environment check and returns the mode.
func checkEnv(problems *[]string) string {
	tokenFile, roleArn := os.Getenv("AWS_WEB_IDENTITY_TOKEN_FILE"), os.Getenv("AWS_ROLE_ARN")
	fullURI := os.Getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI")
	bad := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		fmt.Printf("  ✗ %s\n", msg)
		*problems = append(*problems, msg)
	}
	show := func(name, value string) {
		if value == "" {
			fmt.Printf("  · %s not set\n", name)
		} else {
			fmt.Printf("  ✓ %s=%s\n", name, value)
		}
	}
	if tokenFile != "" {
		if data, err := os.ReadFile(tokenFile); err != nil {
			bad("AWS_WEB_IDENTITY_TOKEN_FILE=%s: %v", tokenFile, err)
		} else {
			fmt.Printf("  ✓ AWS_WEB_IDENTITY_TOKEN_FILE=%s (%d bytes, readable)\n", tokenFile, len(data))
		}
	} else {
		show("AWS_WEB_IDENTITY_TOKEN_FILE", "")
	}
	show("AWS_ROLE_ARN", roleArn)
	show("AWS_CONTAINER_CREDENTIALS_FULL_URI", fullURI)
	switch {
	case fullURI != "" && (tokenFile != "" || roleArn != ""):
		bad("web-identity variables are set beside AWS_CONTAINER_CREDENTIALS_FULL_URI: every SDK prefers web identity, passport would be bypassed")
		return "mixed"
	case fullURI != "":
		if os.Getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") == "" && os.Getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN") == "" {
			bad("AWS_CONTAINER_CREDENTIALS_FULL_URI is set without AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or _TOKEN: passport answers 401")
		}
		return "passport"
	case tokenFile != "" && roleArn != "":
		return "native IRSA"
	default:
		bad("neither AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN (native IRSA) nor AWS_CONTAINER_CREDENTIALS_FULL_URI (passport) is set")
		return "none"
	}
}
