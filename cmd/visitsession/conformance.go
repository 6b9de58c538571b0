package main

import (
	"context"
	"fmt"
	"io"
)

var conformanceCommand = command{
	name:    "conformance",
	summary: "not available in this build",
	run: func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		fmt.Fprintln(stderr, "visitsession conformance: not available in this build")
		return 1
	},
}
