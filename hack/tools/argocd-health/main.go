// Command argocd-health runs an Argo CD custom health check the way Argo CD does: in
// gopher-lua (the Lua VM Argo CD embeds), with the object as the global `obj`, expecting a
// table {status, message}. Given a resource_customizations directory of Argo CD's layout
// (<group>/<Kind>/health.lua, health_test.yaml, testdata/), it runs every case of
// health_test.yaml and prints "N passed, N failed".
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

type healthTest struct {
	Tests []struct {
		HealthStatus struct {
			Status  string `json:"status"`
			Message string `json:"message"`
		} `json:"healthStatus"`
		InputPath string `json:"inputPath"`
	} `json:"tests"`
}

// toLua turns decoded JSON into Lua values, as Argo CD's luajson decoding does.
func toLua(L *lua.LState, v interface{}) lua.LValue {
	switch x := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(x)
	case float64:
		return lua.LNumber(x)
	case string:
		return lua.LString(x)
	case []interface{}:
		t := L.NewTable()
		for _, e := range x {
			t.Append(toLua(L, e))
		}
		return t
	case map[string]interface{}:
		t := L.NewTable()
		for k, e := range x {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	}
	return lua.LNil
}

func health(script string, obj map[string]interface{}) (string, string, error) {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, lib := range []struct {
		name string
		fn   lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
		L.Push(L.NewFunction(lib.fn))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(script); err != nil {
		return "", "", err
	}
	t, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("health.lua returned %s, not a table", L.Get(-1).Type())
	}
	return t.RawGetString("status").String(), lua.LVAsString(t.RawGetString("message")), nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health RESOURCE_CUSTOMIZATIONS_DIR")
		os.Exit(2)
	}
	passed, failed := 0, 0
	checks, _ := filepath.Glob(filepath.Join(os.Args[1], "*", "*", "health.lua"))
	for _, check := range checks {
		dir := filepath.Dir(check)
		script, err := os.ReadFile(check)
		must(err)
		raw, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
		must(err)
		var tests healthTest
		must(yaml.Unmarshal(raw, &tests))
		for _, tc := range tests.Tests {
			input, err := os.ReadFile(filepath.Join(dir, tc.InputPath))
			must(err)
			js, err := yaml.YAMLToJSON(input)
			must(err)
			var obj map[string]interface{}
			must(json.Unmarshal(js, &obj))
			status, message, err := health(string(script), obj)
			if err == nil && status == tc.HealthStatus.Status && message == tc.HealthStatus.Message {
				passed++
				fmt.Printf("ok   %s %s: %s\n", filepath.Base(dir), tc.InputPath, status)
				continue
			}
			failed++
			fmt.Printf("FAIL %s %s: got %q %q (%v), want %q %q\n", filepath.Base(dir), tc.InputPath, status, message, err, tc.HealthStatus.Status, tc.HealthStatus.Message)
		}
	}
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 || passed == 0 {
		os.Exit(1)
	}
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}
