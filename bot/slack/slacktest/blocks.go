package slacktest

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Block Kit's limits, as Slack enforces them (lengths in characters).
const (
	maxMessageBlocks = 50
	maxViewBlocks    = 100
	maxBlockID       = 255
	maxTextObject    = 3000 // any text object, section text included
	maxSectionFields = 10
	maxFieldText     = 2000
	maxHeaderText    = 150
	maxContextItems  = 10
	maxActionsItems  = 25
	maxButtonText    = 75
	maxButtonValue   = 2000
	maxActionID      = 255
	maxButtonURL     = 3000
	maxConfirmTitle  = 100
	maxConfirmText   = 300
	maxConfirmButton = 30
)

// knownBlock is whether Slack knows the block type; checkBlocks looks
// inside the ones greenlight sends.
func knownBlock(typ string) bool {
	switch typ {
	case "actions", "context", "divider", "file", "header", "image", "input",
		"markdown", "rich_text", "section", "table", "video":
		return true
	}
	return false
}

// checkBlocks returns why Slack refuses raw as a message's or view's blocks
// (at most limit of them), as Slack words it: what is wrong and a JSON
// pointer to where; "" when Slack takes them.
func checkBlocks(raw string, limit int) string {
	var blocks []any
	if err := json.Unmarshal([]byte(raw), &blocks); err != nil {
		return "blocks are not a JSON array: " + err.Error() + " [json-pointer:/blocks]"
	}
	c := &checker{}
	if len(blocks) > limit {
		c.fail("/blocks", "no more than %d items allowed", limit)
	}
	ids := map[string]bool{}
	for i, b := range blocks {
		c.block(b, fmt.Sprintf("/blocks/%d", i), ids)
	}
	return c.why
}

// checker keeps the first thing wrong.
type checker struct{ why string }

func (c *checker) fail(ptr, format string, args ...any) {
	if c.why == "" {
		c.why = fmt.Sprintf(format, args...) + " [json-pointer:" + ptr + "]"
	}
}

func (c *checker) block(v any, ptr string, ids map[string]bool) {
	b, ok := v.(map[string]any)
	if !ok {
		c.fail(ptr, "must be an object")
		return
	}
	typ, _ := b["type"].(string)
	if !knownBlock(typ) {
		c.fail(ptr+"/type", "unsupported type: %q", typ)
		return
	}
	if id, ok := b["block_id"]; ok {
		s, _ := id.(string)
		switch {
		case s == "":
			c.fail(ptr+"/block_id", "must be a non-empty string")
		case c.long(ptr+"/block_id", s, maxBlockID):
		case ids[s]:
			c.fail(ptr+"/block_id", "duplicate block_id %q", s)
		}
		ids[s] = true
	}
	switch typ {
	case "section":
		text, hasText := b["text"]
		fields, hasFields := b["fields"].([]any)
		if !hasText && !hasFields {
			c.fail(ptr, "must provide at least one of [text, fields]")
		}
		if hasText {
			c.text(text, ptr+"/text", maxTextObject, false)
		}
		if len(fields) > maxSectionFields {
			c.fail(ptr+"/fields", "no more than %d items allowed", maxSectionFields)
		}
		for i, f := range fields {
			c.text(f, ptr+"/fields/"+strconv.Itoa(i), maxFieldText, false)
		}
		if acc, ok := b["accessory"].(map[string]any); ok && acc["type"] == "button" {
			c.button(acc, ptr+"/accessory")
		}
	case "header":
		c.text(b["text"], ptr+"/text", maxHeaderText, true)
	case "context":
		elems, _ := b["elements"].([]any)
		if len(elems) == 0 || len(elems) > maxContextItems {
			c.fail(ptr+"/elements", "must have between 1 and %d items", maxContextItems)
		}
		for i, e := range elems {
			if m, ok := e.(map[string]any); ok && m["type"] == "image" {
				continue
			}
			c.text(e, ptr+"/elements/"+strconv.Itoa(i), maxTextObject, false)
		}
	case "actions":
		elems, _ := b["elements"].([]any)
		if len(elems) == 0 || len(elems) > maxActionsItems {
			c.fail(ptr+"/elements", "must have between 1 and %d items", maxActionsItems)
		}
		actions := map[string]bool{}
		for i, e := range elems {
			eptr := ptr + "/elements/" + strconv.Itoa(i)
			m, ok := e.(map[string]any)
			if !ok {
				c.fail(eptr, "must be an object")
				continue
			}
			if id, _ := m["action_id"].(string); id != "" {
				if actions[id] {
					c.fail(eptr+"/action_id", "duplicate action_id %q", id)
				}
				actions[id] = true
			}
			if m["type"] == "button" {
				c.button(m, eptr)
			}
		}
	}
}

// button checks a button element.
func (c *checker) button(b map[string]any, ptr string) {
	c.text(b["text"], ptr+"/text", maxButtonText, true)
	for _, f := range []struct {
		name  string
		limit int
	}{{"action_id", maxActionID}, {"value", maxButtonValue}, {"url", maxButtonURL}} {
		if v, ok := b[f.name]; ok {
			s, _ := v.(string)
			if s == "" {
				c.fail(ptr+"/"+f.name, "must be a non-empty string")
			}
			c.long(ptr+"/"+f.name, s, f.limit)
		}
	}
	if style, ok := b["style"]; ok && style != "primary" && style != "danger" {
		c.fail(ptr+"/style", "must be one of [primary, danger]")
	}
	if v, ok := b["confirm"]; ok {
		conf, _ := v.(map[string]any)
		c.text(conf["title"], ptr+"/confirm/title", maxConfirmTitle, true)
		c.text(conf["text"], ptr+"/confirm/text", maxConfirmText, false)
		c.text(conf["confirm"], ptr+"/confirm/confirm", maxConfirmButton, true)
		c.text(conf["deny"], ptr+"/confirm/deny", maxConfirmButton, true)
		if style, ok := conf["style"]; ok && style != "primary" && style != "danger" {
			c.fail(ptr+"/confirm/style", "must be one of [primary, danger]")
		}
	}
}

// text checks a text object: plain_text (or mrkdwn, unless plainOnly),
// between 1 and limit characters.
func (c *checker) text(v any, ptr string, limit int, plainOnly bool) {
	t, ok := v.(map[string]any)
	if !ok {
		c.fail(ptr, "must be a text object")
		return
	}
	switch t["type"] {
	case "plain_text":
	case "mrkdwn":
		if plainOnly {
			c.fail(ptr+"/type", "must be plain_text")
		}
	default:
		c.fail(ptr+"/type", "must be one of [plain_text, mrkdwn]")
	}
	s, _ := t["text"].(string)
	if s == "" {
		c.fail(ptr+"/text", "must be more than 0 characters")
	}
	c.long(ptr+"/text", s, limit)
}

// long fails s when it has more than limit characters.
func (c *checker) long(ptr, s string, limit int) bool {
	if n := utf8.RuneCountInString(s); n > limit {
		c.fail(ptr, "must be less than %d characters (has %d)", limit+1, n)
		return true
	}
	return false
}
