package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// addedToken is an entry of tokenizer.json's added_tokens: a token matched
// in the text before any other step and given its own id.
type addedToken struct {
	id      int
	content string
	// match is what is looked for in the text: content, or for a
	// normalized token the normalizer's output for content.
	match                                  string
	singleWord, lstrip, rstrip, normalized bool
	special                                bool
}

// addedSet finds a set of added tokens in text, leftmost-longest, as the
// tokenizers library's Aho-Corasick automaton does, with a byte trie.
type addedSet struct {
	tokens []*addedToken
	nodes  []trieNode
	first  [256]bool // bytes that start some token
}

type trieNode struct {
	edges []trieEdge
	token int32 // index in tokens of the token ending here, or -1
}

type trieEdge struct {
	b    byte
	next int32
}

// newAddedSet builds the set of the given tokens.
func newAddedSet(tokens []*addedToken) *addedSet {
	s := &addedSet{tokens: tokens, nodes: []trieNode{{token: -1}}}
	for i, t := range tokens {
		n := int32(0)
		for j := 0; j < len(t.match); j++ {
			n = s.child(n, t.match[j])
		}
		if s.nodes[n].token < 0 {
			s.nodes[n].token = int32(i)
		}
		s.first[t.match[0]] = true
	}
	return s
}

// child returns node n's child for byte b, making it if needed.
func (s *addedSet) child(n int32, b byte) int32 {
	for _, e := range s.nodes[n].edges {
		if e.b == b {
			return e.next
		}
	}
	s.nodes = append(s.nodes, trieNode{token: -1})
	next := int32(len(s.nodes) - 1)
	s.nodes[n].edges = append(s.nodes[n].edges, trieEdge{b, next})
	return next
}

// longest returns the longest token that text[i:] starts with, and its end.
func (s *addedSet) longest(text string, i int) (*addedToken, int) {
	var found *addedToken
	end := 0
	n := int32(0)
	for j := i; j < len(text); j++ {
		next := int32(-1)
		for _, e := range s.nodes[n].edges {
			if e.b == text[j] {
				next = e.next
				break
			}
		}
		if next < 0 {
			break
		}
		n = next
		if t := s.nodes[n].token; t >= 0 {
			found, end = s.tokens[t], j+1
		}
	}
	return found, end
}

// split cuts text at the added tokens it holds, calling piece with the text
// between them and token with each token, in order. It follows the
// tokenizers library (AddedVocabulary::find_matches): matches are taken
// left to right without overlap; a single_word token that is not a whole
// word is skipped; lstrip and rstrip widen a match over the white space
// before and after it.
func (s *addedSet) split(text string, piece func(string), token func(*addedToken)) {
	if s == nil || len(s.tokens) == 0 {
		if text != "" {
			piece(text)
		}
		return
	}
	done := 0 // end of what has been emitted
	for i := 0; i < len(text); {
		if !s.first[text[i]] {
			i++
			continue
		}
		t, end := s.longest(text, i)
		if t == nil {
			i++
			continue
		}
		start, stop := i, end
		i = end
		if t.singleWord && (endsWithWord(text[:start]) || startsWithWord(text[stop:])) {
			continue
		}
		if t.lstrip {
			start = max(trailingSpace(text[:start]), done)
		}
		if t.rstrip {
			stop += leadingSpace(text[stop:])
		}
		if done < start {
			piece(text[done:start])
		}
		token(t)
		done = stop
	}
	if done < len(text) {
		piece(text[done:])
	}
}

// isWord reports whether r is \w in Rust's regex crate: Alphabetic, a mark,
// a decimal digit, a connector punctuation or a join control.
func isWord(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsMark(r) || unicode.Is(unicode.Nd, r) ||
		unicode.Is(unicode.Nl, r) || unicode.Is(unicode.Pc, r) ||
		unicode.Is(unicode.Other_Alphabetic, r) || r == 0x200C || r == 0x200D
}

func endsWithWord(s string) bool {
	r, n := utf8.DecodeLastRuneInString(s)
	return n > 0 && isWord(r)
}

func startsWithWord(s string) bool {
	r, n := utf8.DecodeRuneInString(s)
	return n > 0 && isWord(r)
}

// trailingSpace returns where the white space at the end of s starts.
func trailingSpace(s string) int {
	for len(s) > 0 {
		r, n := utf8.DecodeLastRuneInString(s)
		if !unicode.IsSpace(r) {
			break
		}
		s = s[:len(s)-n]
	}
	return len(s)
}

// leadingSpace returns the length of the white space at the start of s.
func leadingSpace(s string) int {
	i := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if !unicode.IsSpace(r) {
			break
		}
		i += n
	}
	return i
}
