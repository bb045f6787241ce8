package jira

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls Jira's REST API v2.
type Client struct {
	base       string
	email, tok string
	hc         *http.Client
}

// NewClient returns a Jira REST client for baseURL.
func NewClient(baseURL, email, token string) *Client {
	return &Client{base: strings.TrimRight(baseURL, "/"), email: email, tok: token,
		hc: &http.Client{Timeout: 30 * time.Second}}
}

// User is a Jira account: accountId on Cloud, name on Server/Data Center.
type User struct {
	AccountID    string `json:"accountId,omitempty"`
	Name         string `json:"name,omitempty"`
	EmailAddress string `json:"emailAddress,omitempty"`
	DisplayName  string `json:"displayName,omitempty"`
}

// Issue is the part of an issue the plugin reads.
type Issue struct {
	ID     string `json:"id"`
	Key    string `json:"key"`
	Fields struct {
		Status struct {
			Name string `json:"name"`
		} `json:"status"`
	} `json:"fields"`
	Changelog struct {
		Histories []History `json:"histories"`
	} `json:"changelog"`
}

// History is one changelog entry.
type History struct {
	ID      string `json:"id"`
	Author  User   `json:"author"`
	Created string `json:"created"`
	Items   []struct {
		Field      string `json:"field"`
		FromString string `json:"fromString"`
		ToString   string `json:"toString"`
	} `json:"items"`
}

// Comment is one issue comment.
type Comment struct {
	ID      string `json:"id"`
	Author  User   `json:"author"`
	Body    string `json:"body"`
	Created string `json:"created"`
}

// Transition is one move the workflow allows from the current status.
type Transition struct {
	ID string `json:"id"`
	To struct {
		Name string `json:"name"`
	} `json:"to"`
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode jira %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("jira %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.email != "" {
		req.SetBasicAuth(c.email, c.tok)
	} else {
		req.Header.Set("Authorization", "Bearer "+c.tok)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("jira %s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("jira %s %s: read answer: %w", method, path, err)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		msg := strings.TrimSpace(string(data))
		if len(msg) > 300 {
			msg = msg[:300]
		}
		return fmt.Errorf("jira %s %s: %s: %s", method, path, res.Status, msg)
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("jira %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// FindUser returns the account with this e-mail, if Jira knows one.
func (c *Client) FindUser(ctx context.Context, email string) (*User, error) {
	var us []User
	if err := c.do(ctx, http.MethodGet, "/rest/api/2/user/search?query="+url.QueryEscape(email), nil, &us); err != nil {
		return nil, err
	}
	for _, u := range us {
		if strings.EqualFold(u.EmailAddress, email) {
			return &u, nil
		}
	}
	return nil, nil
}

// CreateIssue opens an issue and returns its key. reporter may be nil.
func (c *Client) CreateIssue(ctx context.Context, project, issueType, summary, description string, reporter *User) (string, error) {
	fields := map[string]any{
		"project":     map[string]string{"key": project},
		"issuetype":   map[string]string{"name": issueType},
		"summary":     summary,
		"description": description,
	}
	if reporter != nil {
		if reporter.AccountID != "" {
			fields["reporter"] = map[string]string{"accountId": reporter.AccountID}
		} else {
			fields["reporter"] = map[string]string{"name": reporter.Name}
		}
	}
	var out struct {
		Key string `json:"key"`
	}
	if err := c.do(ctx, http.MethodPost, "/rest/api/2/issue", map[string]any{"fields": fields}, &out); err != nil {
		return "", err
	}
	if out.Key == "" {
		return "", fmt.Errorf("jira POST /rest/api/2/issue: no issue key in the answer")
	}
	return out.Key, nil
}

// Issue reads an issue with its changelog.
func (c *Client) Issue(ctx context.Context, key string) (*Issue, error) {
	var is Issue
	err := c.do(ctx, http.MethodGet, "/rest/api/2/issue/"+url.PathEscape(key)+"?expand=changelog", nil, &is)
	return &is, err
}

// Comments lists an issue's comments, oldest first.
func (c *Client) Comments(ctx context.Context, key string) ([]Comment, error) {
	var out struct {
		Comments []Comment `json:"comments"`
	}
	err := c.do(ctx, http.MethodGet, "/rest/api/2/issue/"+url.PathEscape(key)+"/comment?maxResults=1000", nil, &out)
	return out.Comments, err
}

// AddComment adds a comment to an issue.
func (c *Client) AddComment(ctx context.Context, key, body string) error {
	return c.do(ctx, http.MethodPost, "/rest/api/2/issue/"+url.PathEscape(key)+"/comment", map[string]string{"body": body}, nil)
}

// MoveTo moves the issue to the status named status, if the workflow
// allows it from where the issue is.
func (c *Client) MoveTo(ctx context.Context, key, status string) error {
	var out struct {
		Transitions []Transition `json:"transitions"`
	}
	path := "/rest/api/2/issue/" + url.PathEscape(key) + "/transitions"
	if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return err
	}
	for _, t := range out.Transitions {
		if strings.EqualFold(t.To.Name, status) {
			return c.do(ctx, http.MethodPost, path, map[string]any{"transition": map[string]string{"id": t.ID}}, nil)
		}
	}
	return fmt.Errorf("jira issue %s: no transition to %q from its status", key, status)
}
