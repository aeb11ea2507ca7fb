package webhook_test

import (
	"fmt"
	"net/http"
	"time"

	"github.com/handoff/handoff/internal/webhook"
)

// A request signed during a rotation carries two signatures, the current
// secret's first; a receiver holding either secret accepts it.
func ExampleSigner_Sign() {
	current, err := webhook.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		panic(err)
	}
	previous, err := webhook.ParseSecret("whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY")
	if err != nil {
		panic(err)
	}
	h := http.Header{}
	webhook.NewSigner(current, previous).Sign(h, "task_42", time.Unix(1_700_000_000, 0), []byte(`{"id":42}`))
	fmt.Println(h.Get(webhook.HeaderID))
	fmt.Println(h.Get(webhook.HeaderTimestamp))
	fmt.Println(h.Get(webhook.HeaderSignature))
	fmt.Println(current)
	// Output:
	// task_42
	// 1700000000
	// v1,6kWgTBNRRGLRZwUumbHEdlL0mXd34IBUbBIKEoRjFwc= v1,3ddM0xR+7oE8o7zbUXTD19BA4lvAnwzz/8KaK+aaJP0=
	// whsec_[redacted]
}
