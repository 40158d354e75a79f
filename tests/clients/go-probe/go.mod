module passport.test/clients/probe

go 1.26.0

// The oldest aws-sdk-go this code builds against (the November 2018 release of
// ../go-legacy); each client module's own requirement picks the version linked in.
require github.com/aws/aws-sdk-go v1.15.78

// As in ../go-legacy: v1.15.78 predates modules; these are what its packages and their
// tests import, at the versions ../go-legacy pins.
require (
	github.com/jmespath/go-jmespath v0.0.0-20160202185014-0b12d6b521d8 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	golang.org/x/net v0.63.0 // indirect
)
