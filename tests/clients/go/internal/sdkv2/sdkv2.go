// Package sdkv2 is the aws-sdk-go-v2 probe: config.LoadDefaultConfig, the default
// credential chain read from many goroutines, then STS GetCallerIdentity. v2 reads
// AWS_ENDPOINT_URL_STS by itself (for its web-identity STS call too).
package sdkv2

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"passport.test/clients/probe"
)

// Run reads the credentials readers*reads times concurrently, then once more, and calls
// GetCallerIdentity with them.
func Run(ctx context.Context, readers, reads int) (r probe.Result) {
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

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
