// Command kstatus prints what kstatus (sigs.k8s.io/cli-utils/pkg/kstatus, the library Flux,
// kpt and cli-utils wait with) makes of each Kubernetes object given on standard input,
// one JSON object per line: its status (InProgress, Current, Failed, ...) and message.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 16<<20)
	for in.Scan() {
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(in.Bytes()); err != nil {
			fmt.Fprintln(os.Stderr, "bad object:", err)
			os.Exit(2)
		}
		res, err := status.Compute(obj)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kstatus:", err)
			os.Exit(1)
		}
		out, _ := json.Marshal(map[string]string{"status": res.Status.String(), "message": res.Message})
		fmt.Println(string(out))
	}
}
