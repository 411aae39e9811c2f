package slack

import (
	"fmt"
	"testing"
)

func TestMentionCommand(t *testing.T) {
	tests := []struct {
		text string
		bots []string
		want string
	}{
		{"<@U0BOT> status ns", []string{"U0BOT"}, "status ns"},
		{"<@U0BOT|greenlight>: approve ns", []string{"U0BOT"}, "approve ns"},
		{"lock ns --reason a&amp;b <@U0BOT>", []string{"U0BOT"}, "lock ns --reason a&b"},
		{"<@U0BOT> ns --reason ask <@U123ALICE>", []string{"U0BOT"}, "ns --reason ask <@U123ALICE>"},
		{"<@U0BOT>", []string{"U0BOT"}, ""},
		{"<@U0BOT> history", nil, "history"}, // no authorizations: the leading mention goes
		{"hey <@U0BOT>, status", nil, "hey , status"},
		{"  status  ", nil, "status"},
	}
	for i, tc := range tests {
		if got := mentionCommand(tc.text, tc.bots); got != tc.want {
			t.Errorf("%d: mentionCommand(%q, %q) = %q, want %q", i, tc.text, tc.bots, got, tc.want)
		}
	}
}

func TestEventIDsForgetTheOldest(t *testing.T) {
	s := newEventIDs(3)
	for i := range 3 {
		if !s.first(fmt.Sprint(i)) {
			t.Fatalf("%d seen before", i)
		}
	}
	if s.first("1") {
		t.Error("a retry of event 1 was taken as new")
	}
	s.first("3") // pushes out 0
	if !s.first("0") {
		t.Error("event 0 is still remembered after three newer ones")
	}
	if s.first("3") {
		t.Error("event 3 forgotten too early")
	}
}
