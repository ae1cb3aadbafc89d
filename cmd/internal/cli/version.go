package cli

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
)

// Version is the release the binary was built as, set at build time with
//
//	go build -ldflags "-X github.com/tako-kv/tako/cmd/internal/cli.Version=v1.2.3" ./cmd/...
//
// When empty, VersionString falls back to the module's build information.
var Version string

// HandleVersion prints "name version (go version)" on stdout and exits 0
// when the command line asks for -version (or --version); otherwise it
// returns. Every binary calls it first thing in main, before its own flag
// parsing, so that binaries whose flags are parsed elsewhere (launcher,
// subcommands) answer it the same way.
func HandleVersion(name string) {
	if WantsVersion(os.Args[1:]) {
		PrintVersion(os.Stdout, name)
		os.Exit(0)
	}
}

// WantsVersion reports whether args hold -version or --version before a
// "--" that ends the flags.
func WantsVersion(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-version", "--version", "-version=true", "--version=true":
			return true
		}
	}
	return false
}

// PrintVersion writes the version line of the binary name to w.
func PrintVersion(w io.Writer, name string) {
	fmt.Fprintf(w, "%s %s\n", name, VersionString(Version, readBuildInfo()))
}

func readBuildInfo() *debug.BuildInfo {
	bi, _ := debug.ReadBuildInfo()
	return bi
}

// VersionString is "version (go version)": the version set at build time
// when there is one, else the main module's version (a pseudo-version that
// go build derives from the VCS), else the VCS revision, else "devel". bi
// may be nil (a binary built without module support).
func VersionString(set string, bi *debug.BuildInfo) string {
	goVersion := runtime.Version()
	v := set
	if bi != nil {
		goVersion = bi.GoVersion
		if v == "" {
			v = moduleVersion(bi)
		}
	}
	if v == "" {
		v = "devel"
	}
	return fmt.Sprintf("%s (%s)", v, goVersion)
}

// moduleVersion reads a version out of the build information, or "".
func moduleVersion(bi *debug.BuildInfo) string {
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "-dirty"
		}
	}
	if rev == "" {
		return ""
	}
	return rev[:min(12, len(rev))] + dirty
}
