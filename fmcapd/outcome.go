package fmcapd

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// Outcomes: a client that cannot read trailers (the page: a browser's
// fetch) names its pcap query (id=…), and asks afterwards how it ended:
// GET /api/v1/outcome?id=… answers {"complete","error","bytes"} for that
// client's query of that id, kept for outcomeTTL, the last maxOutcomes of
// them; another client's ids are not found.

const (
	maxOutcomes = 1024
	outcomeTTL  = 10 * time.Minute
)

type outcomeKey struct{ client, id string }

type outcome struct {
	Complete bool   `json:"complete"`
	Error    string `json:"error,omitempty"`
	Bytes    int64  `json:"bytes"`
	at       time.Time
}

type outcomes struct {
	mu    sync.Mutex
	m     map[outcomeKey]outcome
	order []outcomeKey // oldest first
}

func (o *outcomes) put(k outcomeKey, v outcome) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[outcomeKey]outcome{}
	}
	if _, ok := o.m[k]; !ok {
		o.order = append(o.order, k)
	}
	o.m[k] = v
	for len(o.order) > maxOutcomes || len(o.order) > 0 && time.Since(o.m[o.order[0]].at) > outcomeTTL {
		delete(o.m, o.order[0])
		o.order = o.order[1:]
	}
}

func (o *outcomes) get(k outcomeKey) (outcome, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	v, ok := o.m[k]
	return v, ok && time.Since(v.at) <= outcomeTTL
}

// validID says whether id may name a query: 8 to 64 letters, digits, - or _.
func validID(id string) bool {
	if len(id) < 8 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func (s *Server) outcomeHandler(w http.ResponseWriter, r *http.Request) {
	client, err := s.identify(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	id := r.URL.Query().Get("id")
	if !validID(id) {
		http.Error(w, "id: 8 to 64 letters, digits, - or _", http.StatusBadRequest)
		return
	}
	v, ok := s.outcomes.get(outcomeKey{client, id})
	if !ok {
		http.Error(w, "no query of yours by that id (outcomes are kept 10 minutes)", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}
