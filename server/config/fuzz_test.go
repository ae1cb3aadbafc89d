package config

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParse: Parse never panics, and whatever it accepts survives the
// canonical JSON round trip with the same Version.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"standalone.yaml", "cluster.yaml", "local_cluster.yaml", "sample.yaml"} {
		data, err := os.ReadFile(filepath.Join(examplesDir, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		if c, err := Parse(data); err == nil {
			js, _ := c.JSON()
			f.Add(js)
		}
	}
	f.Add([]byte(validDoc))
	f.Add([]byte("a: &a [x]\nb: *a\n<<: {c: 1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		js, err := c.JSON()
		if err != nil {
			t.Fatalf("JSON: %v", err)
		}
		c2, err := Parse(js)
		if err != nil {
			t.Fatalf("Parse(JSON()) = %v\n%s", err, js)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip differs\n%+v\n%+v", c, c2)
		}
		_ = c.Nodes()
	})
}
