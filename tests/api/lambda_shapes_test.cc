// The Lambda API's shapes (daemon/lambda_shapes.h): routes, documents,
// errors, and how each outcome of an invocation reads to a Lambda client.
#include "daemon/lambda_shapes.h"

#include <gtest/gtest.h>
#include <kj/encoding.h>

#include <string>

namespace thatchd::lambda {
namespace {

using supervisor::InvokeResult;
using supervisor::Status;

std::string header(const Reply& reply, const std::string& name) {
  for (const auto& [key, value] : reply.headers)
    if (key == name) return value;
  return "(none)";
}

std::string base64(const std::string& bytes) {
  return kj::encodeBase64(kj::ArrayPtr<const kj::byte>(
                              reinterpret_cast<const kj::byte*>(bytes.data()), bytes.size()))
      .cStr();
}

TEST(LambdaRoutes, EachOperationHasItsMethodAndPath) {
  struct Case {
    const char *method, *target;
    Action action;
  };
  const Case cases[] = {
      {"POST", "/2015-03-31/functions", Action::kCreateFunction},
      {"GET", "/2015-03-31/functions/", Action::kListFunctions},
      {"GET", "/2015-03-31/functions/f", Action::kGetFunction},
      {"GET", "/2015-03-31/functions/f/configuration", Action::kGetFunctionConfiguration},
      {"DELETE", "/2015-03-31/functions/f", Action::kDeleteFunction},
      {"PUT", "/2015-03-31/functions/f/code", Action::kUpdateFunctionCode},
      {"PUT", "/2015-03-31/functions/f/configuration", Action::kUpdateFunctionConfiguration},
      {"POST", "/2015-03-31/functions/f/versions", Action::kPublishVersion},
      {"GET", "/2015-03-31/functions/f/versions", Action::kListVersionsByFunction},
      {"POST", "/2015-03-31/functions/f/invocations", Action::kInvoke},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.method) + " " + c.target);
    Route r = route(c.method, c.target);
    EXPECT_EQ(r.action, c.action);
    if (std::string(c.target).size() > 22) {
      EXPECT_EQ(r.function, "f");
    }
  }
}

TEST(LambdaRoutes, FunctionsAreNamedByNameQualifiedNameOrArn) {
  Route plain = route("POST", "/2015-03-31/functions/hello/invocations?Qualifier=3");
  EXPECT_EQ(plain.function, "hello");
  EXPECT_EQ(plain.qualifier, "3");
  Route qualified = route("POST", "/2015-03-31/functions/hello%3A%24LATEST/invocations");
  EXPECT_EQ(qualified.function, "hello");
  EXPECT_EQ(qualified.qualifier, "$LATEST");
  Route arn = route(
      "GET",
      "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Ahi%3A7");
  EXPECT_EQ(arn.function, "hi");
  EXPECT_EQ(arn.qualifier, "7");
  EXPECT_EQ(route("GET", "/2015-03-31/functions/?MaxItems=2&Marker=a%20b").queryValue("Marker"),
            "a b");
}

TEST(LambdaRoutes, UnknownOperationsAndConflictingQualifiersAreRefused) {
  for (const char* target : {"/", "/2015-03-31/functionsX", "/2015-03-31/functions/f/nope",
                             "/2015-03-31/functions/f/code/more", "/2016-01-01/functions"}) {
    try {
      route("GET", target);
      ADD_FAILURE() << target << " was routed";
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status(), 404u) << target;
      EXPECT_EQ(e.type(), "UnknownOperationException");
    }
  }
  try {
    route("POST", "/2015-03-31/functions/f:1/invocations?Qualifier=2");
    ADD_FAILURE() << "two qualifiers were accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 400u);
    EXPECT_EQ(e.type(), "InvalidParameterValueException");
  }
}

TEST(LambdaVersions, LatestIsZeroNumbersAreThemselvesAliasesAreNotFound) {
  EXPECT_EQ(versionOfQualifier("", "arn"), 0u);
  EXPECT_EQ(versionOfQualifier("$LATEST", "arn"), 0u);
  EXPECT_EQ(versionOfQualifier("12", "arn"), 12u);
  for (const char* bad : {"prod", "0", "-1", "99999999999999999999999"}) {
    try {
      versionOfQualifier(bad, "arn:x");
      ADD_FAILURE() << bad;
    } catch (const ApiError& e) {
      EXPECT_EQ(e.type(), "ResourceNotFoundException") << bad;
      EXPECT_NE(std::string(e.what()).find("arn:x"), std::string::npos);
    }
  }
}

TEST(LambdaErrors, AreShapedAsAwsShapesThem) {
  Reply reply = notFound("Function not found: arn:aws:lambda:r:1:function:f").reply();
  EXPECT_EQ(reply.status, 404u);
  EXPECT_EQ(header(reply, "x-amzn-ErrorType"), "ResourceNotFoundException");
  EXPECT_EQ(reply.body,
            R"({"Type":"User","message":"Function not found: arn:aws:lambda:r:1:function:f"})");
  Reply throttled = ApiError(429, "TooManyRequestsException", "Rate Exceeded.").reply();
  EXPECT_NE(throttled.body.find(R"("Reason":)"), std::string::npos);
}

TEST(LambdaDocuments, AFunctionConfigurationSaysWhatTheFunctionRunsWith) {
  supervisor::FunctionVersion version;
  version.name = "hello";
  version.version = 4;
  version.codeBytes = 321;
  version.createdUnixMs = 1700000000123;
  version.config.handler = "app.main";
  version.config.timeout = std::chrono::milliseconds(2500);
  version.config.env = {{"A", "1"}};
  supervisor::LimitsConfig defaults;
  Arns arns{"eu-west-1", "123456789012"};
  std::string latest = functionConfiguration(version, true, arns, defaults);
  EXPECT_NE(latest.find(R"("FunctionArn":"arn:aws:lambda:eu-west-1:123456789012:function:hello")"),
            std::string::npos)
      << latest;
  EXPECT_NE(latest.find(R"("Version":"$LATEST")"), std::string::npos);
  EXPECT_NE(latest.find(R"("Handler":"app.main")"), std::string::npos);
  EXPECT_NE(latest.find(R"("Timeout":3)"), std::string::npos) << "rounded up to whole seconds";
  EXPECT_NE(latest.find(R"("MemorySize":128)"), std::string::npos) << "the default";
  EXPECT_NE(latest.find(R"("CodeSize":321)"), std::string::npos);
  EXPECT_NE(latest.find(R"("LastModified":"2023-11-14T22:13:20.123+0000")"), std::string::npos);
  EXPECT_NE(latest.find(R"("Environment":{"Variables":{"A":"1"}})"), std::string::npos);
  std::string numbered = functionConfiguration(version, false, arns, defaults);
  EXPECT_NE(numbered.find(R"(function:hello:4","Runtime")"), std::string::npos) << numbered;
  EXPECT_NE(numbered.find(R"("Version":"4")"), std::string::npos);
}

TEST(LambdaDocuments, CreateFunctionReadsItsFieldsAndRefusesBadOnes) {
  std::string zip = std::string("PK\x03\x04", 4) + "rest";
  FunctionRequest request =
      readCreateFunction(R"({"FunctionName":"f","Runtime":"python3.11","Handler":"m.h",)"
                         R"("Role":"arn:aws:iam::1:role/r","Timeout":7,"MemorySize":256,)"
                         R"("Environment":{"Variables":{"K":"v"}},"Publish":true,)"
                         R"("Code":{"ZipFile":")" +
                             base64(zip) + R"("}})",
                         {});
  EXPECT_EQ(request.name, "f");
  EXPECT_EQ(request.zipFile, zip);
  EXPECT_TRUE(request.publish);
  EXPECT_EQ(request.config.handler, "m.h");
  EXPECT_EQ(request.config.timeout, std::chrono::seconds(7));
  EXPECT_EQ(request.config.memoryBytes, 256ull << 20);
  EXPECT_EQ(request.config.env, (decltype(request.config.env){{"K", "v"}}));

  const std::pair<std::string, std::string> bad[] = {
      {"not json", "InvalidRequestContentException"},
      {"[1]", "InvalidRequestContentException"},
      {R"({"Runtime":"python3.11","Handler":"m.h","Code":{"ZipFile":""}})",
       "InvalidParameterValueException"},
      {R"({"FunctionName":"f","Runtime":"python3.11","Handler":"m.h","Timeout":901,"Code":{"ZipFile":"UEs="}})",
       "InvalidParameterValueException"},
      {R"({"FunctionName":"f","Runtime":"python3.11","Handler":"m.h","MemorySize":64,"Code":{"ZipFile":"UEs="}})",
       "InvalidParameterValueException"},
      {R"({"FunctionName":"f","Runtime":"python3.11","Handler":"m.h","Code":{"ZipFile":"!!"}})",
       "InvalidParameterValueException"},
      {R"({"FunctionName":"f","Runtime":"python3.11","Handler":"m.h","Code":{"S3Bucket":"b"}})",
       "InvalidParameterValueException"},
      {R"({"FunctionName":"f","Runtime":"python3.11","Handler":"m.h","PackageType":"Image","Code":{"ZipFile":"UEs="}})",
       "InvalidParameterValueException"},
      {R"({"FunctionName":"f:1","Runtime":"python3.11","Handler":"m.h","Code":{"ZipFile":"UEs="}})",
       "InvalidParameterValueException"},
  };
  for (const auto& [body, type] : bad) {
    try {
      readCreateFunction(body, {});
      ADD_FAILURE() << body;
    } catch (const ApiError& e) {
      EXPECT_EQ(e.type(), type) << body << ": " << e.what();
    }
  }
}

TEST(LambdaDocuments, UpdateConfigurationKeepsWhatItDoesNotName) {
  thatch::FunctionConfig now;
  now.handler = "a.b";
  now.env = {{"OLD", "1"}};
  now.memoryBytes = 512ull << 20;
  FunctionRequest request =
      readUpdateConfiguration(R"({"Timeout":9,"Environment":{"Variables":{"NEW":"2"}}})", now);
  EXPECT_EQ(request.config.handler, "a.b");
  EXPECT_EQ(request.config.memoryBytes, 512ull << 20);
  EXPECT_EQ(request.config.timeout, std::chrono::seconds(9));
  EXPECT_EQ(request.config.env, (decltype(now.env){{"NEW", "2"}}));
}

TEST(LambdaDocuments, LayersAreNamedByArnOrNameAndVersion) {
  FunctionRequest request = readUpdateConfiguration(
      R"({"Layers":["arn:aws:lambda:us-east-1:000000000000:layer:deps:3","tools:12"]})", {});
  ASSERT_EQ(request.config.layers.size(), 2u);
  EXPECT_EQ(request.config.layers[0], (thatch::LayerRef{"deps", 3}));
  EXPECT_EQ(request.config.layers[1], (thatch::LayerRef{"tools", 12}));
  supervisor::FunctionVersion version;
  version.name = "f";
  version.config = request.config;
  std::string document = functionConfiguration(version, true, {"eu-west-1", "123456789012"}, {});
  EXPECT_NE(
      document.find(R"("Layers":[{"Arn":"arn:aws:lambda:eu-west-1:123456789012:layer:deps:3"},)"
                    R"({"Arn":"arn:aws:lambda:eu-west-1:123456789012:layer:tools:12"}])"),
      std::string::npos)
      << document;
  for (const char* bad :
       {R"({"Layers":"deps:1"})", R"({"Layers":["deps"]})", R"({"Layers":["deps:0"]})",
        R"({"Layers":["deps:x"]})", R"({"Layers":["arn:aws:lambda:r:a:function:f:1"]})"}) {
    try {
      readUpdateConfiguration(bad, {});
      ADD_FAILURE() << bad;
    } catch (const ApiError& e) {
      EXPECT_EQ(e.type(), "InvalidParameterValueException") << bad;
    }
  }
}

TEST(LambdaInvoke, AnAnswerIsTheFunctionsResult) {
  InvokeResult result;
  result.payload = R"({"ok":true})";
  result.logs = std::string(5000, 'x') + "last line\n";
  Reply reply = invokeReply(result, "rid", "$LATEST", true, std::chrono::seconds(3), "arn");
  EXPECT_EQ(reply.status, 200u);
  EXPECT_EQ(reply.body, R"({"ok":true})");
  EXPECT_EQ(header(reply, "X-Amz-Function-Error"), "(none)");
  EXPECT_EQ(header(reply, "X-Amz-Executed-Version"), "$LATEST");
  std::string tail = result.logs.substr(result.logs.size() - 4096);
  EXPECT_EQ(header(reply, "X-Amz-Log-Result"), base64(tail));
  Reply noTail = invokeReply(result, "rid", "2", false, std::chrono::seconds(3), "arn");
  EXPECT_EQ(header(noTail, "X-Amz-Log-Result"), "(none)");
  EXPECT_EQ(header(noTail, "X-Amz-Executed-Version"), "2");
}

TEST(LambdaInvoke, FunctionErrorsAreUnhandledWithLambdasDocument) {
  InvokeResult raised;
  raised.status = Status::kHandlerError;
  raised.errorType = "ValueError";
  raised.errorMessage = "bad value";
  raised.traceback =
      "Traceback (most recent call last):\n"
      "  File \"/var/task/handler.py\", line 3, in handler\n"
      "    raise ValueError(\"bad value\")\n"
      "ValueError: bad value\n";
  Reply reply = invokeReply(raised, "rid-1", "$LATEST", false, std::chrono::seconds(3), "arn");
  EXPECT_EQ(reply.status, 200u);
  EXPECT_EQ(header(reply, "X-Amz-Function-Error"), "Unhandled");
  EXPECT_EQ(reply.body,
            R"({"errorMessage":"bad value","errorType":"ValueError","requestId":"rid-1",)"
            R"("stackTrace":["  File \"/var/task/handler.py\", line 3, in handler\n)"
            R"(    raise ValueError(\"bad value\")\n"]})");

  InvokeResult timedOut;
  timedOut.status = Status::kTimeout;
  Reply timeout =
      invokeReply(timedOut, "rid-2", "$LATEST", false, std::chrono::milliseconds(1500), "arn");
  EXPECT_EQ(header(timeout, "X-Amz-Function-Error"), "Unhandled");
  EXPECT_NE(timeout.body.find("Task timed out after 1.50 seconds"), std::string::npos)
      << timeout.body;
  EXPECT_NE(timeout.body.find(R"("errorType":"Sandbox.Timedout")"), std::string::npos);

  InvokeResult oom;
  oom.status = Status::kOutOfMemory;
  oom.errorMessage = "over 128 MiB";
  Reply memory = invokeReply(oom, "rid-3", "$LATEST", false, std::chrono::seconds(3), "arn");
  EXPECT_EQ(header(memory, "X-Amz-Function-Error"), "Unhandled");
  EXPECT_NE(memory.body.find(R"("errorType":"Runtime.OutOfMemory")"), std::string::npos);
  EXPECT_NE(memory.body.find("Runtime exited with error: signal: killed"), std::string::npos);

  InvokeResult importFailed;
  importFailed.status = Status::kStartFailed;
  importFailed.errorType = "ModuleNotFoundError";
  importFailed.errorMessage = "No module named 'nope'";
  EXPECT_NE(invokeReply(importFailed, "r", "$LATEST", false, std::chrono::seconds(3), "arn")
                .body.find("Runtime.ImportModuleError"),
            std::string::npos);
}

TEST(LambdaInvoke, CallsThatNeverRanAreServiceErrors) {
  const std::tuple<Status, unsigned, const char*> cases[] = {
      {Status::kOverloaded, 429, "TooManyRequestsException"},
      {Status::kNotFound, 404, "ResourceNotFoundException"},
      {Status::kBadRequest, 400, "InvalidRequestContentException"},
      {Status::kShuttingDown, 503, "ServiceException"},
      {Status::kStartFailed, 500, "ServiceException"},  // no Python error: thatch's own failure
  };
  for (const auto& [status, code, type] : cases) {
    InvokeResult result;
    result.status = status;
    result.errorMessage = "why";
    Reply reply = invokeReply(result, "r", "$LATEST", false, std::chrono::seconds(3), "arn");
    EXPECT_EQ(reply.status, code) << thatch::statusName(status);
    EXPECT_EQ(header(reply, "x-amzn-ErrorType"), type) << thatch::statusName(status);
    EXPECT_EQ(header(reply, "X-Amz-Function-Error"), "(none)");
  }
}

}  // namespace
}  // namespace thatchd::lambda
