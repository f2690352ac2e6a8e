// Command sdkcheck uses the Go client that OpenAPI Generator makes from the service's OpenAPI
// document, the way an application would, against a running server: upload and check the digit,
// page the history with the cursor, correct a label and read it back, download the image,
// upload a batch, delete, and read a problem as its typed error. Every step is checked; the
// first failure ends the program with exit status 1. With MNIST_API_KEY set it authenticates
// with that key, through the client's bearer token (mnist.ContextAccessToken).
//
//	openapi-generator-cli generate -g go -i openapi.json -o client \
//	    --package-name mnistclient --git-host example.org --git-user-id mnist --git-repo-id client
//	MNIST_API_KEY=mnist_... go run . http://127.0.0.1:8000 tests/data/golden
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	mnist "example.org/mnist/client"
)

var ctx = context.Background()

func check(ok bool, format string, args ...any) {
	if !ok {
		fmt.Fprintf(os.Stderr, "FAILED: "+format+"\n", args...)
		os.Exit(1)
	}
}

func must(err error, what string) {
	if err != nil {
		var apiErr *mnist.GenericOpenAPIError
		if errors.As(err, &apiErr) {
			check(false, "%s: %v: %s", what, err, apiErr.Body())
		}
		check(false, "%s: %v", what, err)
	}
}

func open(dir, name string) *os.File {
	file, err := os.Open(filepath.Join(dir, name))
	must(err, "open "+name)
	return file
}

// upload sends one golden digit and checks the answer, its Location header and that the
// confidence arrived as the full 64-bit number the server sent.
func upload(api *mnist.APIClient, server, dir string, digit int32) mnist.Prediction {
	file := open(dir, fmt.Sprintf("digit-%d.png", digit))
	defer file.Close()
	prediction, response, err := api.PredictionsAPI.CreatePrediction(ctx).File(file).Execute()
	must(err, "create_prediction")
	check(response.StatusCode == 201, "create_prediction answered %d", response.StatusCode)
	check(response.Header.Get("Location") == "/v1/predictions/"+prediction.Id,
		"Location %q for %s", response.Header.Get("Location"), prediction.Id)
	check(prediction.Digit == digit, "digit %d read as %d", digit, prediction.Digit)
	check(prediction.Confidence == prediction.Probabilities[digit], "confidence is not p[digit]")
	check(string(prediction.Verdict) == "digit", "verdict %q for a golden %d", prediction.Verdict, digit)
	request, err := http.NewRequest("GET", server+"/v1/predictions/"+prediction.Id, nil)
	must(err, "raw request")
	if key := os.Getenv("MNIST_API_KEY"); key != "" {
		request.Header.Set("Authorization", "Bearer "+key)
	}
	raw, err := http.DefaultClient.Do(request)
	must(err, "raw get")
	defer raw.Body.Close()
	var sent struct{ Confidence float64 }
	must(json.NewDecoder(raw.Body).Decode(&sent), "raw decode")
	check(sent.Confidence == prediction.Confidence, "confidence %v arrived as %v",
		sent.Confidence, prediction.Confidence)
	return *prediction
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: sdkcheck SERVER_URL GOLDEN_DIR")
		os.Exit(2)
	}
	server, dir := os.Args[1], os.Args[2]
	if key := os.Getenv("MNIST_API_KEY"); key != "" {
		ctx = context.WithValue(ctx, mnist.ContextAccessToken, key)
	}
	config := mnist.NewConfiguration()
	config.Servers = mnist.ServerConfigurations{{URL: server}}
	api := mnist.NewAPIClient(config)

	seven := upload(api, server, dir, 7)
	three := upload(api, server, dir, 3)
	five := upload(api, server, dir, 5)
	fmt.Println("ok: uploads answered with their digits, Location and full-precision confidence")

	page, _, err := api.PredictionsAPI.ListPredictions(ctx).Limit(1).Execute()
	must(err, "list_predictions")
	check(len(page.Items) == 1 && page.Items[0].Id == five.Id, "first page: %+v", page.Items)
	cursor := page.GetNextCursor()
	check(cursor != "", "no next_cursor on a page with more after it")
	page, _, err = api.PredictionsAPI.ListPredictions(ctx).Limit(1).Cursor(cursor).Execute()
	must(err, "list_predictions with cursor")
	check(len(page.Items) == 1 && page.Items[0].Id == three.Id, "second page: %+v", page.Items)
	fmt.Println("ok: history pages newest first with the cursor")

	labeled, _, err := api.PredictionsAPI.SetPredictionLabel(ctx, seven.Id).
		LabelUpdate(*mnist.NewLabelUpdate(1)).Execute()
	must(err, "set_prediction_label")
	check(labeled.GetLabel() == 1, "label answer %v", labeled.Label)
	again, _, err := api.PredictionsAPI.GetPrediction(ctx, seven.Id).Execute()
	must(err, "get_prediction")
	check(again.GetLabel() == 1 && again.LabeledAt.IsSet(), "label read back: %+v", again)
	fmt.Println("ok: label set and read back")

	image, _, err := api.PredictionsAPI.GetPredictionImage(ctx, seven.Id).Execute()
	must(err, "get_prediction_image")
	got, err := io.ReadAll(image)
	must(err, "read image")
	sent, err := os.ReadFile(filepath.Join(dir, "digit-7.png"))
	must(err, "read upload")
	check(bytes.Equal(got, sent), "image: %d bytes back, %d sent", len(got), len(sent))
	fmt.Println("ok: image bytes equal to the upload")

	two, text := open(dir, "digit-2.png"), open(dir, "not-an-image.txt")
	batch, _, err := api.PredictionsAPI.CreatePredictionsBatch(ctx).
		Files([]*os.File{two, text}).Execute()
	must(err, "create_predictions_batch")
	check(len(batch.Items) == 2, "batch items: %d", len(batch.Items))
	first, second := batch.Items[0], batch.Items[1]
	check(first.Status == 201 && first.Prediction.Get().Digit == 2, "batch item 1: %+v", first)
	check(second.Status == 422 && second.Problem.Get().Type == "/problems/invalid-image",
		"batch item 2: %+v", second)
	fmt.Println("ok: batch with one result per file")

	response, err := api.PredictionsAPI.DeletePrediction(ctx, three.Id).Execute()
	must(err, "delete_prediction")
	check(response.StatusCode == 204, "delete answered %d", response.StatusCode)
	_, response, err = api.PredictionsAPI.GetPrediction(ctx, three.Id).Execute()
	var apiErr *mnist.GenericOpenAPIError
	check(errors.As(err, &apiErr), "get after delete: %v", err)
	problem, ok := apiErr.Model().(mnist.Problem)
	check(ok, "the error is not a Problem: %#v", apiErr.Model())
	check(response.StatusCode == 404 && problem.Status == 404 &&
		problem.Type == "/problems/prediction-not-found", "problem: %+v", problem)
	fmt.Println("ok: deleted; the 404 read as a typed Problem:", problem.Title)
}
