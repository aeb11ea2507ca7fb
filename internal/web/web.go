// Package web holds Handoff's browser pages: one HTML document, its script
// and its style sheet, embedded in the binary. No build step, no framework:
// the files here are what the browser gets.
package web

import "embed"

// FS holds app.html, app.js and app.css.
//
//go:embed app.html app.js app.css
var FS embed.FS
