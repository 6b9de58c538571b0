package main

import (
	"context"
	"fmt"
	"io"
)

var sweepCommand = command{
	name:    "sweep",
	summary: "not available in this build",
	run: func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		fmt.Fprintln(stderr, "visitsession sweep: not available in this build")
		return 1
	},
}
