package dialect

import "strings"

// SQLiteFileDSN returns a modernc.org/sqlite DSN for the database file at
// path that suits a session store: WAL journaling (readers never wait for
// the writer), a 10-second busy timeout and synchronous=NORMAL, applied to
// every connection the pool opens.
func SQLiteFileDSN(path string) string {
	path = strings.ReplaceAll(path, "%", "%25")
	path = strings.ReplaceAll(path, "?", "%3F")
	path = strings.ReplaceAll(path, "#", "%23")
	return "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
}
