// Package sdkv1 is the aws-sdk-go v1 probe: session.NewSession(), the default credential
// chain read from many goroutines, then STS GetCallerIdentity. The same code runs against
// v1.55.8 (../go) and v1.15.78 (../go-legacy); it uses only what the 2018 release has.
//
// STS endpoint: v1 has no AWS_ENDPOINT_URL_STS, so the probe passes that variable on as
// aws.Config.Endpoint, to the STS client only or (EndpointInSession) to the session, where
// v1's own web-identity STS client picks it up too.
package sdkv1

import (
	"os"

	"github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/aws/session"
	"github.com/aws/aws-sdk-go/service/sts"

	"passport.test/clients/probe"
)

// Run reads the credentials readers*reads times concurrently, then once more, and calls
// GetCallerIdentity with them.
func Run(readers, reads int, endpointInSession bool) (r probe.Result) {
	r = probe.Result{SDK: "aws-sdk-go", Version: aws.SDKVersion, Entry: "session.NewSession()"}
	endpoint := aws.NewConfig()
	if ep := os.Getenv("AWS_ENDPOINT_URL_STS"); ep != "" {
		endpoint = endpoint.WithEndpoint(ep)
	}
	sessionCfg, stsCfg := aws.NewConfig(), endpoint
	if endpointInSession {
		sessionCfg, stsCfg = endpoint, aws.NewConfig()
	}
	sess, err := session.NewSession(sessionCfg)
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
	out, err := sts.New(sess, stsCfg).GetCallerIdentity(&sts.GetCallerIdentityInput{})
	if err != nil {
		r.Error = "GetCallerIdentity: " + err.Error()
		return
	}
	r.Account, r.UserID, r.Arn = aws.StringValue(out.Account), aws.StringValue(out.UserId), aws.StringValue(out.Arn)
	return
}
