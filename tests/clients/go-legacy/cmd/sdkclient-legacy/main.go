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
// AWS_ENDPOINT_URL_STS: the program passes that variable to sts.New as aws.Config.Endpoint.
// CLIENT_READERS goroutines each read the credentials CLIENT_READS times first.
//
// It prints one JSON line in the same shape as ../go's sdkclient (copied, not shared: a
// module can require one version of aws-sdk-go only, so this is a separate module).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"

	"github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/aws/session"
	"github.com/aws/aws-sdk-go/service/sts"
)

type result struct {
	SDK          string `json:"sdk"`
	Version      string `json:"version"`
	Entry        string `json:"entry"`
	Provider     string `json:"provider,omitempty"`
	AccessKeyID  string `json:"access_key_id,omitempty"`
	Account      string `json:"account,omitempty"`
	UserID       string `json:"user_id,omitempty"`
	Arn          string `json:"arn,omitempty"`
	Reads        int    `json:"reads"`
	DistinctKeys int    `json:"distinct_keys"`
	Error        string `json:"error,omitempty"`
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func main() {
	r := run(envInt("CLIENT_READERS", 1), envInt("CLIENT_READS", 1))
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
	if r.Error != "" {
		os.Exit(1)
	}
}

func run(readers, reads int) (r result) {
	r = result{SDK: "aws-sdk-go", Version: aws.SDKVersion, Entry: "session.NewSession()"}
	sess, err := session.NewSession()
	if err != nil {
		r.Error = "NewSession: " + err.Error()
		return
	}
	var (
		mu       sync.Mutex
		keys     = map[string]bool{}
		firstErr error
		start    = make(chan struct{})
		wg       sync.WaitGroup
	)
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for j := 0; j < reads; j++ {
				v, err := sess.Config.Credentials.Get()
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				} else if err == nil {
					r.Reads++
					keys[v.AccessKeyID] = true
				}
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	r.DistinctKeys = len(keys)
	if firstErr != nil {
		r.Error = "Credentials.Get: " + firstErr.Error()
		return
	}
	v, err := sess.Config.Credentials.Get()
	if err != nil {
		r.Error = "Credentials.Get: " + err.Error()
		return
	}
	r.Provider, r.AccessKeyID = v.ProviderName, v.AccessKeyID
	cfg := aws.NewConfig()
	if ep := os.Getenv("AWS_ENDPOINT_URL_STS"); ep != "" {
		cfg = cfg.WithEndpoint(ep)
	}
	out, err := sts.New(sess, cfg).GetCallerIdentity(&sts.GetCallerIdentityInput{})
	if err != nil {
		r.Error = "GetCallerIdentity: " + err.Error()
		return
	}
	r.Account, r.UserID, r.Arn = aws.StringValue(out.Account), aws.StringValue(out.UserId), aws.StringValue(out.Arn)
	return
}
