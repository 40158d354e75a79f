module passport.test/clients/go-legacy

go 1.26.0

require github.com/aws/aws-sdk-go v1.15.78 // indirect

require (
	github.com/jmespath/go-jmespath v0.0.0-20160202185014-0b12d6b521d8 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/text v0.44.0 // indirect
)

// The SDK-independent probe and the aws-sdk-go v1 probe, shared with the other Go client
// module (see ../go-probe/go.mod).
require passport.test/clients/probe v0.0.0

replace passport.test/clients/probe => ../go-probe
