package visit

import (
	"errors"
	"fmt"
)

// MaxIdentLength is the longest table or column name accepted. It is the
// smallest limit of the supported databases (PostgreSQL's 63 bytes) minus
// room for the suffixes of derived names such as the expiry index.
const MaxIdentLength = 48

// ErrInvalidName reports a table or column name that is not a plain
// identifier.
var ErrInvalidName = errors.New("visit: invalid identifier")

// Table names the visit table and its columns. The zero value is not
// usable; start from [Default] and change what differs.
type Table struct {
	// Name is the table's name, optionally qualified by one schema
	// ("app.visit"). Default: "visit".
	Name string
	// Key is the primary-key column holding the visit key (40 characters).
	// Default: "visit_key".
	Key string
	// Data is the nullable blob column holding the encoded session.
	// Default: "session_data".
	Data string
	// Created is the column holding the instant the visit started.
	// Default: "created".
	Created string
	// Expiry is the column holding the instant the visit ends.
	// Default: "expiry".
	Expiry string
	// Version is the integer column used for optimistic concurrency control.
	// Default: "version".
	Version string
}

// Default returns TurboGears' layout: table visit with columns visit_key,
// session_data, created, expiry, plus version.
func Default() Table {
	return Table{
		Name:    "visit",
		Key:     "visit_key",
		Data:    "session_data",
		Created: "created",
		Expiry:  "expiry",
		Version: "version",
	}
}

// Column identifies one of the table's columns.
type Column int

// The columns of the visit table, in the order of the CREATE TABLE statement.
const (
	ColKey Column = iota
	ColData
	ColCreated
	ColExpiry
	ColVersion
)

// Columns lists every column in CREATE TABLE order.
var Columns = []Column{ColKey, ColData, ColCreated, ColExpiry, ColVersion}

// String returns the column's role, for example "expiry".
func (c Column) String() string {
	switch c {
	case ColKey:
		return "key"
	case ColData:
		return "data"
	case ColCreated:
		return "created"
	case ColExpiry:
		return "expiry"
	case ColVersion:
		return "version"
	}
	return fmt.Sprintf("Column(%d)", int(c))
}

// ColumnName returns the configured name of column c.
func (t Table) ColumnName(c Column) string {
	switch c {
	case ColKey:
		return t.Key
	case ColData:
		return t.Data
	case ColCreated:
		return t.Created
	case ColExpiry:
		return t.Expiry
	case ColVersion:
		return t.Version
	}
	return ""
}

// WithName returns a copy of t with the table name replaced.
func (t Table) WithName(name string) Table {
	t.Name = name
	return t
}

// Validate checks every name. Each must be a plain identifier: an ASCII
// letter or underscore followed by letters, digits or underscores, at most
// [MaxIdentLength] bytes. The table name may carry one schema qualifier
// ("schema.table"). Column names must be distinct, compared without case.
// The error wraps [ErrInvalidName].
func (t Table) Validate() error {
	if err := validateQualified(t.Name); err != nil {
		return fmt.Errorf("table name: %w", err)
	}
	seen := make(map[string]Column, len(Columns))
	for _, c := range Columns {
		name := t.ColumnName(c)
		if err := ValidateIdent(name); err != nil {
			return fmt.Errorf("%s column: %w", c, err)
		}
		folded := foldASCII(name)
		if prev, dup := seen[folded]; dup {
			return fmt.Errorf("%w: %s and %s columns share the name %q", ErrInvalidName, prev, c, name)
		}
		seen[folded] = c
	}
	return nil
}

// SchemaAndName splits a qualified table name into its schema ("" when
// unqualified) and table parts. It assumes t has been validated.
func (t Table) SchemaAndName() (schema, name string) {
	for i := 0; i < len(t.Name); i++ {
		if t.Name[i] == '.' {
			return t.Name[:i], t.Name[i+1:]
		}
	}
	return "", t.Name
}

// IndexName returns the name of the index on the expiry column.
func (t Table) IndexName() string {
	_, name := t.SchemaAndName()
	return name + "_" + t.Expiry + "_idx"
}

func validateQualified(name string) error {
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			if err := ValidateIdent(name[:i]); err != nil {
				return fmt.Errorf("schema: %w", err)
			}
			return ValidateIdent(name[i+1:])
		}
	}
	return ValidateIdent(name)
}

// ValidateIdent reports whether name is a plain SQL identifier: an ASCII
// letter or underscore, then letters, digits or underscores, 1 to
// [MaxIdentLength] bytes. Anything else (quotes, backticks, semicolons,
// spaces, NUL, non-ASCII) gives an error wrapping [ErrInvalidName] that
// quotes the name escaped.
func ValidateIdent(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty name", ErrInvalidName)
	}
	if len(name) > MaxIdentLength {
		return fmt.Errorf("%w: %d bytes, longer than %d", ErrInvalidName, len(name), MaxIdentLength)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')
		if !ok {
			return fmt.Errorf("%w: %q has a disallowed character at byte %d", ErrInvalidName, name, i)
		}
	}
	return nil
}

func foldASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
