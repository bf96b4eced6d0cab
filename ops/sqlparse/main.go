// Command sqlparse checks SQL statements with Vitess's own SQL parser
// (vitess.io/vitess/go/vt/sqlparser), the parser PlanetScale's vtgate uses.
//
// Input (stdin): JSON lines, each {"id": "<label>", "sql": "<statement>"}.
// Blank lines are skipped.
//
// Output (stdout): one JSON line per statement that failed,
//
//	{"id": ..., "sql": <first 300 characters>, "error": ...}
//
// then one summary line {"checked": N, "failed": M}.
//
// Exit code: 0 when nothing failed, 1 when at least one statement failed,
// 2 on bad input or usage (message on stderr, naming the line number).
//
// A DDL statement that Vitess only partially parses (Parser.Parse returns
// it without an error and marks it not fully parsed; vtgate then passes it
// through without understanding it) counts as a failure here.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	vtlog "vitess.io/vitess/go/vt/log"
	"vitess.io/vitess/go/vt/sqlparser"
)

const (
	sqlEchoLimit = 300      // characters of the statement echoed in a failure line
	maxLineBytes = 64 << 20 // longest accepted input line
)

type input struct {
	ID  *string `json:"id"`
	SQL *string `json:"sql"`
}

type failure struct {
	ID    string `json:"id"`
	SQL   string `json:"sql"`
	Error string `json:"error"`
}

type summary struct {
	Checked int `json:"checked"`
	Failed  int `json:"failed"`
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sqlparse", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mysqlVersion := fs.String("mysql-version", "8.0.40", "MySQL server version the parser emulates")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "sqlparse: unexpected arguments: %v (statements are read from stdin)\n", fs.Args())
		return 2
	}

	// Parser.Parse logs a warning through Vitess's logger when it accepts a
	// partially parsed DDL; that case is reported as a failure below instead.
	vtlog.SwapLogger(slog.New(slog.DiscardHandler))

	parser, err := sqlparser.New(sqlparser.Options{MySQLServerVersion: *mysqlVersion})
	if err != nil {
		fmt.Fprintf(stderr, "sqlparse: %v\n", err)
		return 2
	}

	out := bufio.NewWriter(stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)

	reader := bufio.NewReaderSize(stdin, 1<<20)
	var sum summary
	for lineNo := 1; ; lineNo++ {
		line, err := readLine(reader)
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Fprintf(stderr, "sqlparse: stdin line %d: %v\n", lineNo, err)
			return 2
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		in, err := decode(line)
		if err != nil {
			fmt.Fprintf(stderr, "sqlparse: stdin line %d: %v\n", lineNo, err)
			return 2
		}
		sum.Checked++
		if perr := check(parser, *in.SQL); perr != nil {
			sum.Failed++
			if err := enc.Encode(failure{ID: *in.ID, SQL: truncate(*in.SQL, sqlEchoLimit), Error: perr.Error()}); err != nil {
				fmt.Fprintf(stderr, "sqlparse: writing stdout: %v\n", err)
				return 2
			}
		}
	}
	if err := enc.Encode(sum); err != nil {
		fmt.Fprintf(stderr, "sqlparse: writing stdout: %v\n", err)
		return 2
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintf(stderr, "sqlparse: writing stdout: %v\n", err)
		return 2
	}
	if sum.Failed > 0 {
		return 1
	}
	return 0
}

// readLine returns the next line without its line ending, io.EOF at the end.
func readLine(r *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		chunk, err := r.ReadSlice('\n')
		b.Write(chunk)
		if b.Len() > maxLineBytes {
			return "", fmt.Errorf("line longer than %d bytes", maxLineBytes)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			if b.Len() == 0 {
				return "", io.EOF
			}
			break
		}
		if err != nil {
			return "", err
		}
		break
	}
	s := strings.TrimSuffix(b.String(), "\n")
	return strings.TrimSuffix(s, "\r"), nil
}

func decode(line string) (*input, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	var in input
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	if dec.More() {
		return nil, errors.New("more than one JSON value on the line")
	}
	if in.ID == nil {
		return nil, errors.New(`missing string field "id"`)
	}
	if in.SQL == nil {
		return nil, errors.New(`missing string field "sql"`)
	}
	return &in, nil
}

// check parses one statement; a nil result means Vitess accepts it.
func check(parser *sqlparser.Parser, sql string) error {
	stmt, err := parser.Parse(sql)
	if err != nil {
		return err
	}
	if ddl, ok := stmt.(sqlparser.DDLStatement); ok && !ddl.IsFullyParsed() {
		return partialError(parser, sql)
	}
	if ddl, ok := stmt.(sqlparser.DBDDLStatement); ok && !ddl.IsFullyParsed() {
		return partialError(parser, sql)
	}
	return nil
}

func partialError(parser *sqlparser.Parser, sql string) error {
	if _, err := parser.ParseStrictDDL(sql); err != nil {
		return fmt.Errorf("DDL only partially parsed: %v", err)
	}
	return errors.New("DDL only partially parsed")
}

// truncate keeps the first n characters (runes) of s.
func truncate(s string, n int) string {
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}
