package codec_test

import (
	"errors"
	"fmt"

	"github.com/visitsession/visitsession/internal/codec"
)

func ExampleBinary() {
	c := codec.Binary()
	data, err := c.Encode(map[string]any{
		"user_id": int64(42),
		"roles":   []string{"admin", "editor"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	values, err := c.Decode(data)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%T %v\n", values["user_id"], values["user_id"])
	fmt.Printf("%T %v\n", values["roles"], values["roles"])

	_, err = c.Decode(data[:len(data)-1])
	fmt.Println(errors.Is(err, codec.ErrCorrupt))
	// Output:
	// int64 42
	// []string [admin editor]
	// true
}

func ExampleJSON() {
	c := codec.JSON()
	data, err := c.Encode(map[string]any{
		"user_id": int64(42),
		"roles":   []string{"admin", "editor"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(data))
	values, err := c.Decode(data)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%T %v\n", values["user_id"], values["user_id"])
	fmt.Printf("%T %v\n", values["roles"], values["roles"])
	// Output:
	// {"roles":["admin","editor"],"user_id":42}
	// json.Number 42
	// []interface {} [admin editor]
}
