// sdkclient: an unmodified AWS SDK for Go reads credentials through its default chain and
// calls STS GetCallerIdentity with them. The environment alone picks the path the SDK takes
// (container endpoint, IMDS, ...), as in a pod: the harness sets it per compatibility level.
//
//	sdkclient v2   aws-sdk-go-v2, config.LoadDefaultConfig (internal/sdkv2)
//	sdkclient v1   aws-sdk-go v1, session.NewSession() (../go-probe/sdkv1)
//
// CLIENT_READERS goroutines (default 1) each read the credentials CLIENT_READS times
// (default 1) before the call; the harness counts the fetches passport sees.
//
// STS endpoint: v2 reads AWS_ENDPOINT_URL_STS itself. v1 has no such variable, so the
// probe passes AWS_ENDPOINT_URL_STS to sts.New as aws.Config.Endpoint.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"passport.test/clients/go/internal/sdkv2"
	"passport.test/clients/probe"
	"passport.test/clients/probe/sdkv1"
)

func main() {
	if len(os.Args) != 2 || (os.Args[1] != "v1" && os.Args[1] != "v2") {
		fmt.Fprintln(os.Stderr, "usage: sdkclient v1|v2")
		os.Exit(64)
	}
	readers, reads := probe.EnvInt("CLIENT_READERS", 1), probe.EnvInt("CLIENT_READS", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if os.Args[1] == "v2" {
		probe.Emit(sdkv2.Run(ctx, readers, reads))
	}
	probe.Emit(sdkv1.Run(readers, reads, false))
}
