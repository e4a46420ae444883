package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Command is one subcommand of a program.
type Command struct {
	// Summary is the one-line description shown by --help.
	Summary string
	// Run runs the subcommand with its arguments (after the name).
	Run func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// Commands is a program's subcommands by name. Each subcommand registers
// itself from its own file (in an init function), so adding one touches no
// other file.
type Commands struct {
	Program string
	// Default is run when the first argument is not a subcommand name.
	Default string
	// Intro is printed above the list of subcommands by --help.
	Intro  string
	byName map[string]Command
}

// Add registers a subcommand.
func (c *Commands) Add(name string, cmd Command) {
	if c.byName == nil {
		c.byName = make(map[string]Command)
	}
	if _, dup := c.byName[name]; dup {
		panic("cli: subcommand " + name + " registered twice")
	}
	c.byName[name] = cmd
}

// Run dispatches args to a subcommand.
func (c *Commands) Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	name := c.Default
	if len(args) > 0 {
		switch a := args[0]; {
		case a == "-h" || a == "--help" || a == "help":
			c.usage(stdout)
			return nil
		case !strings.HasPrefix(a, "-"):
			if _, ok := c.byName[a]; !ok {
				return Usagef("unknown subcommand %q (see %s --help)", a, c.Program)
			}
			name, args = a, args[1:]
		}
	}
	return c.byName[name].Run(ctx, args, stdout, stderr)
}

func (c *Commands) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage:\n")
	names := make([]string, 0, len(c.byName))
	for n := range c.byName {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		def := ""
		if n == c.Default {
			def = " (default)"
		}
		fmt.Fprintf(w, "  %s %-10s %s%s\n", c.Program, n, c.byName[n].Summary, def)
	}
	if c.Intro != "" {
		fmt.Fprintf(w, "\n%s\n", c.Intro)
	}
	fmt.Fprintf(w, "\nRun \"%s <subcommand> --help\" for its flags.\n", c.Program)
}
