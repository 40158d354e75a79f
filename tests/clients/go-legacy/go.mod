module passport.test/clients/go-legacy

go 1.26.0

require github.com/aws/aws-sdk-go v1.15.78

require (
	github.com/jmespath/go-jmespath v0.0.0-20160202185014-0b12d6b521d8 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	golang.org/x/net v0.63.0 // indirect
)
