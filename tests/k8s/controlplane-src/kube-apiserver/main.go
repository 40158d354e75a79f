// kube-apiserver for the test control plane (tests/k8s/control-plane): the upstream
// command, built from the pinned k8s.io/kubernetes release in ../go.mod.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
