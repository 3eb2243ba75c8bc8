package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"conveyor/ui"
)

// cmdPasswd reads a password from standard input (its first line) and
// prints its argon2id hash for the configuration's dashboard.password_hash
// (or CONVEYOR_PASSWORD_HASH), so that the dashboard's login takes the
// password besides the API token.
func cmdPasswd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: conveyor passwd < password-file\n\n"+
			"Reads a password from standard input (the first line) and prints its argon2id hash.\n"+
			"Put the hash in the configuration file as dashboard.password_hash (or in\n"+
			"CONVEYOR_PASSWORD_HASH): the dashboard's login then takes the password as well as the API token.")
	}
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return &usageError{"passwd takes no arguments: give the password on standard input"}
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read the password: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if len(pw) < 8 {
		return &usageError{"the password must have at least 8 characters"}
	}
	hash, err := ui.HashPassword(pw)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, hash)
	return nil
}
