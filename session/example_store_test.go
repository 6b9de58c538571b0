package session_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/visitsession/visitsession/session"
)

// A session's life without the middleware: a first save writes it under a
// fresh token, later requests load it by that token, and a login renews
// the token.
func ExampleStore_Load() {
	ctx := context.Background()
	store, cleanup := openExampleStore(ctx)
	defer cleanup()

	s := store.New()
	s.Set("lang", "de")
	if err := store.Save(ctx, s); err != nil {
		log.Fatal(err)
	}
	token := s.Token() // what the cookie carries

	s, err := store.Load(ctx, token)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("lang:", s.GetString("lang"))

	s.Set("user", "alice")
	if err := store.Renew(ctx, s); err != nil { // at login: new token, same data
		log.Fatal(err)
	}
	old, _ := store.Load(ctx, token)
	fmt.Println("old token finds a session:", !old.IsNew())
	s, _ = store.Load(ctx, s.Token())
	fmt.Println("new token:", s.GetString("user"), s.GetString("lang"))
	// Output:
	// lang: de
	// old token finds a session: false
	// new token: alice de
}

// With a grace window, a request that still carries the token a renewal
// replaced (sent before the browser got the new cookie) reaches the
// renewed session, and its save lands there, until the window ends.
func ExampleWithRenewGrace() {
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	store, cleanup := openExampleStore(ctx, session.WithRenewGrace(5*time.Second),
		session.WithClock(func() time.Time { return now }))
	defer cleanup()

	s := store.New()
	s.Set("cart", 1)
	if err := store.Save(ctx, s); err != nil {
		log.Fatal(err)
	}
	oldToken := s.Token()
	inFlight, _ := store.Load(ctx, oldToken) // a parallel request, loaded before the login

	s.Set("user", "alice")
	if err := store.Renew(ctx, s); err != nil {
		log.Fatal(err)
	}
	inFlight.Set("cart", 2)
	if err := store.Save(ctx, inFlight); err != nil {
		log.Fatal(err)
	}
	fmt.Println("in-flight save moved to the new token:", inFlight.Token() == s.Token())

	late, _ := store.Load(ctx, oldToken)
	fmt.Println("within the window:", late.GetString("user"), late.GetInt("cart"))

	now = now.Add(6 * time.Second)
	late, _ = store.Load(ctx, oldToken)
	fmt.Println("after the window, a new session:", late.IsNew())
	// Output:
	// in-flight save moved to the new token: true
	// within the window: alice 2
	// after the window, a new session: true
}
