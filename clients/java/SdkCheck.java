/*
 * Uses the Java client that OpenAPI Generator (okhttp-gson) makes from the service's OpenAPI
 * document, the way an application would, against a running server: upload and check the
 * digit, page the history with the cursor, correct a label and read it back, download the
 * image, upload a batch, delete, and read a problem as its typed model. Every step is checked;
 * the first failure ends the program with exit status 1. With MNIST_API_KEY set it authenticates
 * with that key (ApiClient.setBearerToken).
 *
 *   openapi-generator-cli generate -g java --library okhttp-gson -i openapi.json -o client \
 *       --invoker-package org.example.mnist --api-package org.example.mnist.api \
 *       --model-package org.example.mnist.model
 *   javac -cp CLIENT_CLASSPATH SdkCheck.java && java -cp .:CLIENT_CLASSPATH SdkCheck URL DIR
 */

import java.io.File;
import java.nio.file.Files;
import java.util.Arrays;
import java.util.List;
import java.util.UUID;
import org.example.mnist.ApiClient;
import org.example.mnist.ApiException;
import org.example.mnist.ApiResponse;
import org.example.mnist.api.PredictionsApi;
import org.example.mnist.model.BatchItem;
import org.example.mnist.model.BatchResult;
import org.example.mnist.model.LabelUpdate;
import org.example.mnist.model.Prediction;
import org.example.mnist.model.PredictionPage;
import org.example.mnist.model.Problem;

public final class SdkCheck {
  private SdkCheck() {}

  private static void check(boolean ok, String message) {
    if (!ok) {
      System.err.println("FAILED: " + message);
      System.exit(1);
    }
  }

  /** Uploads one golden digit and checks the answer and its Location header. */
  private static Prediction upload(PredictionsApi api, File dir, int digit) throws ApiException {
    ApiResponse<Prediction> created =
        api.createPredictionWithHttpInfo(new File(dir, "digit-" + digit + ".png"));
    Prediction prediction = created.getData();
    check(created.getStatusCode() == 201, "create_prediction answered " + created.getStatusCode());
    List<String> location = created.getHeaders().get("Location");
    check(
        location != null && location.get(0).equals("/v1/predictions/" + prediction.getId()),
        "Location " + location + " for " + prediction.getId());
    check(prediction.getDigit() == digit, "digit " + digit + " read as " + prediction.getDigit());
    double confidence = prediction.getConfidence(); // a double, not a BigDecimal
    check(confidence == prediction.getProbabilities().get(digit), "confidence is not p[digit]");
    String verdict = String.valueOf(prediction.getVerdict());
    check(verdict.equals("digit"), "verdict " + verdict + " for a golden " + digit);
    return prediction;
  }

  public static void main(String[] args) throws Exception {
    if (args.length != 2) {
      System.err.println("usage: SdkCheck SERVER_URL DATA_DIR");
      System.exit(2);
    }
    ApiClient client = new ApiClient();
    client.setBasePath(args[0]);
    String key = System.getenv("MNIST_API_KEY");
    if (key != null && !key.isEmpty()) {
      client.setBearerToken(key); // the bearerAuth scheme of the spec
    }
    PredictionsApi api = new PredictionsApi(client);
    File dir = new File(args[1]);

    Prediction seven = upload(api, dir, 7);
    Prediction three = upload(api, dir, 3);
    Prediction five = upload(api, dir, 5);
    System.out.println("ok: uploads answered with their digits and Location");

    PredictionPage page = api.listPredictions(1, null, null, null, null);
    check(page.getItems().size() == 1, "first page size " + page.getItems().size());
    check(page.getItems().get(0).getId().equals(five.getId()), "first page: " + page);
    check(page.getNextCursor() != null, "no next_cursor on a page with more after it");
    page = api.listPredictions(1, page.getNextCursor(), null, null, null);
    check(page.getItems().get(0).getId().equals(three.getId()), "second page: " + page);
    System.out.println("ok: history pages newest first with the cursor");

    Prediction labeled = api.setPredictionLabel(seven.getId(), new LabelUpdate().label(1));
    check(labeled.getLabel() == 1, "label answer " + labeled.getLabel());
    Prediction again = api.getPrediction(seven.getId());
    check(again.getLabel() == 1 && again.getLabeledAt() != null, "label read back: " + again);
    System.out.println("ok: label set and read back");

    File image = api.getPredictionImage(seven.getId());
    byte[] got = Files.readAllBytes(image.toPath());
    byte[] sent = Files.readAllBytes(new File(dir, "digit-7.png").toPath());
    check(Arrays.equals(got, sent), "image: " + got.length + " bytes back, " + sent.length + " sent");
    System.out.println("ok: image bytes equal to the upload");

    BatchResult batch =
        api.createPredictionsBatch(
            List.of(new File(dir, "digit-2.png"), new File(dir, "not-an-image.txt")));
    check(batch.getItems().size() == 2, "batch items: " + batch.getItems().size());
    BatchItem first = batch.getItems().get(0);
    BatchItem second = batch.getItems().get(1);
    check(first.getStatus() == 201 && first.getPrediction().getDigit() == 2, "item 1: " + first);
    check(
        second.getStatus() == 422 && second.getProblem().getType().equals("/problems/invalid-image"),
        "item 2: " + second);
    System.out.println("ok: batch with one result per file");

    ApiResponse<Void> deleted = api.deletePredictionWithHttpInfo(three.getId());
    check(deleted.getStatusCode() == 204, "delete answered " + deleted.getStatusCode());
    UUID gone = three.getId();
    try {
      api.getPrediction(gone);
      check(false, "get after delete succeeded");
    } catch (ApiException error) {
      Problem problem = Problem.fromJson(error.getResponseBody());
      check(
          error.getCode() == 404
              && problem.getStatus() == 404
              && problem.getType().equals("/problems/prediction-not-found"),
          "problem: " + problem);
      System.out.println("ok: deleted; the 404 read as a typed Problem: " + problem.getTitle());
    }
  }
}
