package main

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// EnvBrowser turns on TestBrowserDemo; EnvChromium names the browser
// binary when it is not chromium on the PATH.
const (
	EnvBrowser  = "VISITSESSION_BROWSER"
	EnvChromium = "VISITSESSION_CHROMIUM"
)

func findChromium() string {
	if p := os.Getenv(EnvChromium); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestBrowserDemo drives the demo in headless Chromium through the
// DevTools protocol and checks the cookie flow as a real browser sees
// it: an HttpOnly, SameSite=Lax, persistent cookie that scripts cannot
// read; the counter; the language form; a login that replaces the cookie
// and the fingerprint; a logout that ends the visit.
func TestBrowserDemo(t *testing.T) {
	path := findChromium()
	if os.Getenv(EnvBrowser) != "1" {
		if path == "" {
			t.Skipf("no chromium found (install it with apt-get install -y chromium, or set %s); set %s=1 to run", EnvChromium, EnvBrowser)
		}
		t.Skipf("set %s=1 to drive the demo in headless Chromium (%s)", EnvBrowser, path)
	}
	if path == "" {
		t.Fatalf("%s=1 but no chromium found: install it with apt-get install -y chromium, or set %s", EnvBrowser, EnvChromium)
	}
	t.Chdir(t.TempDir())
	base, _ := startDemo(t)
	cdp := launchChromium(t, path)

	// First visit: a fresh session and its cookie.
	cdp.navigate(base + "/")
	cdp.waitText("#visits", "1")
	cdp.waitText("#hello", "Hello!")
	ck := cdp.sessionCookie(base)
	if !ck.HTTPOnly || ck.Secure || ck.SameSite != "Lax" || ck.Path != "/" || ck.Session || ck.Expires < float64(time.Now().Unix()) {
		t.Fatalf("cookie as the browser keeps it: %+v", ck)
	}
	if got := cdp.eval(`document.cookie`); got != "" {
		t.Fatalf("scripts can read cookies: %q", got)
	}
	first := ck.Value
	cdp.waitText("#session", fp(first))

	// The counter counts on reload.
	cdp.navigate(base + "/")
	cdp.waitText("#visits", "2")

	// The language form persists the preference.
	cdp.eval(`(() => { const f = document.querySelector('#language-form'); f.lang.value = 'fr'; f.submit(); return '' })()`)
	cdp.waitText("#hello", "Bonjour!")
	cdp.waitText("#visits", "3")
	if got := cdp.sessionCookie(base).Value; got != first {
		t.Fatal("the cookie changed without a login")
	}

	// Login renews the key: a new cookie and fingerprint, same data.
	cdp.eval(`(() => { const f = document.querySelector('#login-form'); f.name.value = 'alice'; f.submit(); return '' })()`)
	cdp.waitText("#user", "alice")
	cdp.waitText("#hello", "Bonjour, alice!")
	cdp.waitText("#visits", "4")
	loggedIn := cdp.sessionCookie(base).Value
	if loggedIn == first {
		t.Fatal("login kept the old session key")
	}
	cdp.waitText("#session", fp(loggedIn))
	if got := demoState(t, base, first); !strings.Contains(got, "user=\n") || !strings.Contains(got, "visits=0\n") {
		t.Fatalf("the key from before the login still works: %q", got)
	}

	// Logout ends the visit; the page that follows starts a new one.
	cdp.eval(`(() => { document.querySelector('#logout-form').submit(); return '' })()`)
	cdp.waitText("#user", "not logged in")
	cdp.waitText("#visits", "1")
	cdp.waitText("#hello", "Hello!")
	if got := cdp.sessionCookie(base).Value; got == loggedIn || got == first {
		t.Fatal("the browser still holds an ended session's cookie")
	}
	if got := demoState(t, base, loggedIn); !strings.Contains(got, "user=\n") {
		t.Fatalf("the key from before the logout still works: %q", got)
	}
}

// demoState fetches /state with a raw session cookie.
func demoState(t *testing.T, base, token string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/state", nil)
	req.Header.Set("Cookie", "visit="+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// cdpClient speaks the Chrome DevTools protocol to one page over a
// minimal WebSocket client.
type cdpClient struct {
	t    *testing.T
	conn net.Conn
	rd   *bufio.Reader
	id   int
}

var devtoolsRE = regexp.MustCompile(`DevTools listening on (ws://[^\s]+)`)

// launchChromium starts headless Chromium in its own process group with a
// fresh profile, and connects to its first page. Cleanup kills that
// process group.
func launchChromium(t *testing.T, path string) *cdpClient {
	t.Helper()
	cmd := exec.Command(path,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--lang=en-US", "--accept-lang=en-US",
		"--user-data-dir="+t.TempDir(), "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
		"about:blank")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(-pid, syscall.SIGKILL) // the group started above
		_ = cmd.Wait()
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			if m := devtoolsRE.FindStringSubmatch(sc.Text()); m != nil && !sent {
				found <- m[1]
				sent = true
			}
		}
		if !sent {
			close(found)
		}
	}()
	var browserWS string
	select {
	case ws, ok := <-found:
		if !ok {
			t.Fatal("chromium exited before its DevTools endpoint was up")
		}
		browserWS = ws
	case <-time.After(60 * time.Second):
		t.Fatal("chromium did not announce its DevTools endpoint within 60s")
	}
	u, err := url.Parse(browserWS)
	if err != nil {
		t.Fatal(err)
	}
	pageWS := pageTarget(t, u.Host)
	return dialCDP(t, pageWS)
}

// pageTarget returns the WebSocket URL of the browser's first page.
func pageTarget(t *testing.T, host string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + host + "/json/list")
		if err == nil {
			var targets []struct{ Type, WebSocketDebuggerURL string }
			err = json.NewDecoder(resp.Body).Decode(&targets)
			resp.Body.Close()
			for _, tg := range targets {
				if tg.Type == "page" && tg.WebSocketDebuggerURL != "" {
					return tg.WebSocketDebuggerURL
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no page target: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dialCDP opens the WebSocket at wsURL (RFC 6455 client handshake).
func dialCDP(t *testing.T, wsURL string) *cdpClient {
	t.Helper()
	u, err := url.Parse(wsURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var nonce [16]byte
	rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
		u.RequestURI(), u.Host, key)
	rd := bufio.NewReader(conn)
	resp, err := http.ReadResponse(rd, nil)
	if err != nil {
		t.Fatalf("websocket handshake: %v", err)
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		t.Fatalf("websocket handshake: %s", resp.Status)
	}
	return &cdpClient{t: t, conn: conn, rd: rd}
}

// writeText sends one masked text frame.
func (c *cdpClient) writeText(payload []byte) error {
	hdr := []byte{0x81}
	switch n := len(payload); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n <= 0xFFFF:
		hdr = append(hdr, 0x80|126, byte(n>>8), byte(n))
	default:
		hdr = binary.BigEndian.AppendUint64(append(hdr, 0x80|127), uint64(n))
	}
	var mask [4]byte
	rand.Read(mask[:])
	hdr = append(hdr, mask[:]...)
	masked := make([]byte, len(payload))
	for i, b := range payload {
		masked[i] = b ^ mask[i%4]
	}
	_, err := c.conn.Write(append(hdr, masked...))
	return err
}

// readMessage returns the next text message, answering pings.
func (c *cdpClient) readMessage() ([]byte, error) {
	var msg []byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.rd, h[:]); err != nil {
			return nil, err
		}
		fin, op := h[0]&0x80 != 0, h[0]&0x0F
		n := uint64(h[1] & 0x7F)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(c.rd, b[:]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(c.rd, b[:]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		if h[1]&0x80 != 0 || n > 64<<20 {
			return nil, errors.New("websocket: masked or oversized server frame")
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(c.rd, payload); err != nil {
			return nil, err
		}
		switch op {
		case 0x8:
			return nil, errors.New("websocket: closed by the browser")
		case 0x9:
			pong := append([]byte{0x8A, 0x80 | byte(len(payload))}, 0, 0, 0, 0)
			if _, err := c.conn.Write(append(pong, payload...)); err != nil {
				return nil, err
			}
			continue
		case 0xA:
			continue
		}
		msg = append(msg, payload...)
		if fin {
			return msg, nil
		}
	}
}

// call runs one DevTools method and decodes its result into out.
func (c *cdpClient) call(method string, params any, out any) {
	c.t.Helper()
	c.id++
	req, err := json.Marshal(map[string]any{"id": c.id, "method": method, "params": params})
	if err != nil {
		c.t.Fatal(err)
	}
	c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := c.writeText(req); err != nil {
		c.t.Fatalf("%s: %v", method, err)
	}
	for {
		raw, err := c.readMessage()
		if err != nil {
			c.t.Fatalf("%s: %v", method, err)
		}
		var resp struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(raw, &resp); err != nil {
			c.t.Fatalf("%s: %v", method, err)
		}
		if resp.ID != c.id {
			continue // an event, or an answer to nothing we wait for
		}
		if resp.Error != nil {
			c.t.Fatalf("%s: %s", method, resp.Error.Message)
		}
		if out != nil {
			if err := json.Unmarshal(resp.Result, out); err != nil {
				c.t.Fatalf("%s result: %v", method, err)
			}
		}
		return
	}
}

func (c *cdpClient) navigate(u string) {
	c.t.Helper()
	var res struct {
		ErrorText string `json:"errorText"`
	}
	c.call("Page.navigate", map[string]any{"url": u}, &res)
	if res.ErrorText != "" {
		c.t.Fatalf("navigate %s: %s", u, res.ErrorText)
	}
}

// eval evaluates a JavaScript expression whose value is a string.
func (c *cdpClient) eval(expr string) string {
	c.t.Helper()
	var res struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	c.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &res)
	if res.ExceptionDetails != nil {
		return "exception: " + res.ExceptionDetails.Text
	}
	s, _ := res.Result.Value.(string)
	return s
}

// waitText waits until the element matching selector holds text, once
// the page has loaded.
func (c *cdpClient) waitText(selector, text string) {
	c.t.Helper()
	expr := fmt.Sprintf(`(() => { if (document.readyState !== 'complete') return ''; const e = document.querySelector(%q); return e ? e.textContent.trim() : '' })()`, selector)
	deadline := time.Now().Add(30 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		if got = c.eval(expr); got == text {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("%s holds %q, want %q", selector, got, text)
}

// browserCookie is a cookie as Network.getCookies reports it.
type browserCookie struct {
	Name, Value, Path, SameSite string
	Expires                     float64
	HTTPOnly                    bool `json:"httpOnly"`
	Secure, Session             bool
}

// sessionCookie returns the browser's session cookie for base.
func (c *cdpClient) sessionCookie(base string) browserCookie {
	c.t.Helper()
	var res struct{ Cookies []browserCookie }
	c.call("Network.getCookies", map[string]any{"urls": []string{base + "/"}}, &res)
	for _, ck := range res.Cookies {
		if ck.Name == "visit" {
			return ck
		}
	}
	c.t.Fatalf("the browser holds no session cookie (cookies %+v)", res.Cookies)
	return browserCookie{}
}
