package main

import (
	"context"
	"fmt"
	"io"
)

var demoCommand = command{
	name:    "demo",
	summary: "not available in this build",
	run: func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		fmt.Fprintln(stderr, "visitsession demo: not available in this build")
		return 1
	},
}
