// Renders an Ollama Modelfile TEMPLATE with Go's text/template, as Ollama does: reads
// {"template": "...", "cases": [{"System": "...", "Messages": [{"Role": ..., "Content": ...}]}]}
// on stdin and prints each rendering followed by a NUL byte.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/template"
)

type Message struct {
	Role    string
	Content string
}

type Case struct {
	System   string
	Messages []Message
}

func main() {
	var input struct {
		Template string `json:"template"`
		Cases    []Case `json:"cases"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&input); err != nil {
		panic(err)
	}
	tmpl := template.Must(template.New("modelfile").Parse(input.Template))
	for _, c := range input.Cases {
		if err := tmpl.Execute(os.Stdout, c); err != nil {
			panic(err)
		}
		fmt.Print("\x00")
	}
}
