// sdkclient: an unmodified AWS SDK for Go reads credentials through its default chain and
// calls STS GetCallerIdentity with them. The environment alone picks the path the SDK takes
// (container endpoint, IMDS, ...), as in a pod: the harness sets it per compatibility level.
//
//	sdkclient v2   aws-sdk-go-v2, config.LoadDefaultConfig
//	sdkclient v1   aws-sdk-go v1, session.NewSession()
//
// CLIENT_READERS goroutines (default 1) each read the credentials CLIENT_READS times
// (default 1) before the call; the harness counts the fetches passport sees.
//
// STS endpoint: v2 reads AWS_ENDPOINT_URL_STS itself. v1 has no such variable, so this
// program passes AWS_ENDPOINT_URL_STS to sts.New as aws.Config.Endpoint.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"passport.test/clients/go/internal/probe"

	awsv1 "github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/aws/session"
	stsv1 "github.com/aws/aws-sdk-go/service/sts"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sts"
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
		probe.Emit(runV2(ctx, readers, reads))
	}
	probe.Emit(runV1(readers, reads))
}

func runV2(ctx context.Context, readers, reads int) (r probe.Result) {
	r = probe.Result{
		SDK:     "aws-sdk-go-v2",
		Version: "config " + probe.ModuleVersion("github.com/aws/aws-sdk-go-v2/config") + ", core " + probe.ModuleVersion("github.com/aws/aws-sdk-go-v2"),
		Entry:   "config.LoadDefaultConfig",
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		r.Error = "LoadDefaultConfig: " + err.Error()
		return
	}
	r.Reads, r.DistinctKeys, err = probe.ReadConcurrently(readers, reads, func() (string, error) {
		c, err := cfg.Credentials.Retrieve(ctx)
		return c.AccessKeyID, err
	})
	if err != nil {
		r.Error = "Credentials.Retrieve: " + err.Error()
		return
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		r.Error = "Credentials.Retrieve: " + err.Error()
		return
	}
	r.Provider, r.AccessKeyID = creds.Source, creds.AccessKeyID
	out, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		r.Error = "GetCallerIdentity: " + err.Error()
		return
	}
	r.Account, r.UserID, r.Arn = deref(out.Account), deref(out.UserId), deref(out.Arn)
	return
}

func runV1(readers, reads int) (r probe.Result) {
	r = probe.Result{SDK: "aws-sdk-go", Version: awsv1.SDKVersion, Entry: "session.NewSession()"}
	sess, err := session.NewSession()
	if err != nil {
		r.Error = "NewSession: " + err.Error()
		return
	}
	r.Reads, r.DistinctKeys, err = probe.ReadConcurrently(readers, reads, func() (string, error) {
		v, err := sess.Config.Credentials.Get()
		return v.AccessKeyID, err
	})
	if err != nil {
		r.Error = "Credentials.Get: " + err.Error()
		return
	}
	v, err := sess.Config.Credentials.Get()
	if err != nil {
		r.Error = "Credentials.Get: " + err.Error()
		return
	}
	r.Provider, r.AccessKeyID = v.ProviderName, v.AccessKeyID
	stsCfg := awsv1.NewConfig()
	if ep := os.Getenv("AWS_ENDPOINT_URL_STS"); ep != "" {
		stsCfg = stsCfg.WithEndpoint(ep)
	}
	out, err := stsv1.New(sess, stsCfg).GetCallerIdentity(&stsv1.GetCallerIdentityInput{})
	if err != nil {
		r.Error = "GetCallerIdentity: " + err.Error()
		return
	}
	r.Account, r.UserID, r.Arn = deref(out.Account), deref(out.UserId), deref(out.Arn)
	return
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
