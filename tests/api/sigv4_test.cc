// daemon/sigv4.h: the requests of AWS's own SigV4 test suite verify, every
// way a request can be wrong is refused as AWS words it, and what botocore
// signs for Lambda verifies.
#include "daemon/sigv4.h"

#include <gtest/gtest.h>
#include <strings.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace {

using thatchd::sigv4::canonicalQuery;
using thatchd::sigv4::canonicalUri;
using thatchd::sigv4::Refusal;
using thatchd::sigv4::Request;
using thatchd::sigv4::Verified;
using Headers = std::vector<std::pair<std::string, std::string>>;
using Outcome = std::variant<Verified, Refusal>;

// The suite's fixed inputs (its context.json).
const std::string kSuiteKey = "AKIDEXAMPLE";
const std::string kSuiteSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
constexpr int64_t kSuiteTime = 1440938160;  // 20150830T123600Z
constexpr std::string_view kSuiteService = "service";
const std::string kMismatch =
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details.";

const std::string* suiteSecret(std::string_view key) {
  return key == kSuiteKey ? &kSuiteSecret : nullptr;
}

// One request of the suite, in the form AWS services use ("normalized"
// paths), with the Authorization it carries in header-signed-request.txt.
struct SuiteCase {
  std::string name;
  std::string method;
  std::string target;  // as in the request line: raw bytes, not percent-encoded
  Headers headers;     // besides Host and X-Amz-Date
  std::string signedHeaders;
  std::string signature;
  std::string body;
};

std::string suiteAuthorization(const std::string& signedHeaders, const std::string& signature) {
  return "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
         "SignedHeaders=" +
         signedHeaders + ", Signature=" + signature;
}

// The request a client sends for `suiteCase`; it views suiteCase.body.
Request received(const SuiteCase& suiteCase) {
  Request request{suiteCase.method, suiteCase.target, {}, suiteCase.body};
  request.headers.emplace_back("Host", "example.amazonaws.com");
  request.headers.insert(request.headers.end(), suiteCase.headers.begin(), suiteCase.headers.end());
  request.headers.emplace_back("X-Amz-Date", "20150830T123600Z");
  request.headers.emplace_back("Authorization",
                               suiteAuthorization(suiteCase.signedHeaders, suiteCase.signature));
  return request;
}

const std::vector<SuiteCase>& suiteCases() {
  static const std::vector<SuiteCase> cases = {
      {"get-vanilla",
       "GET",
       "/",
       {},
       "host;x-amz-date",
       "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
       ""},
      {"post-vanilla",
       "POST",
       "/",
       {},
       "host;x-amz-date",
       "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
       ""},
      {"get-vanilla-query-order-key-case",
       "GET",
       "/?Param2=value2&Param1=value1",
       {},
       "host;x-amz-date",
       "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
       ""},
      {"get-vanilla-query-order-encoded",
       "GET",
       "/?Param-3=Value3&Param=Value2&%E1%88%B4=Value1",
       {},
       "host;x-amz-date",
       "371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac",
       ""},
      {"get-vanilla-query-unreserved",
       "GET",
       "/?-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz="
       "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
       {},
       "host;x-amz-date",
       "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
       ""},
      {"get-vanilla-utf8-query",
       "GET",
       "/?\xE1\x88\xB4=bar",
       {},
       "host;x-amz-date",
       "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
       ""},
      {"get-vanilla-empty-query-key",
       "GET",
       "/?Param1=value1",
       {},
       "host;x-amz-date",
       "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb",
       ""},
      {"get-header-key-duplicate",
       "GET",
       "/",
       {{"My-Header1", "value2"}, {"My-Header1", "value2"}, {"My-Header1", "value1"}},
       "host;my-header1;x-amz-date",
       "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
       ""},
      {"get-header-value-order",
       "GET",
       "/",
       {{"My-Header1", "value4"},
        {"My-Header1", "value1"},
        {"My-Header1", "value3"},
        {"My-Header1", "value2"}},
       "host;my-header1;x-amz-date",
       "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01",
       ""},
      {"get-header-value-trim",
       "GET",
       "/",
       {{"My-Header1", " value1"}, {"My-Header2", " \"a   b   c\""}},
       "host;my-header1;my-header2;x-amz-date",
       "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
       ""},
      {"post-header-value-case",
       "POST",
       "/",
       {{"My-Header1", "VALUE1"}},
       "host;my-header1;x-amz-date",
       "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
       ""},
      {"get-unreserved",
       "GET",
       "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
       {},
       "host;x-amz-date",
       "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
       ""},
      {"get-utf8",
       "GET",
       "/\xE1\x88\xB4",
       {},
       "host;x-amz-date",
       "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
       ""},
      {"get-space-normalized",
       "GET",
       "/example space/",
       {},
       "host;x-amz-date",
       "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
       ""},
      {"get-slashes-normalized",
       "GET",
       "//example//",
       {},
       "host;x-amz-date",
       "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84",
       ""},
      {"get-slash-dot-slash-normalized",
       "GET",
       "/./",
       {},
       "host;x-amz-date",
       "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
       ""},
      {"get-relative-relative-normalized",
       "GET",
       "/example1/example2/../..",
       {},
       "host;x-amz-date",
       "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
       ""},
      {"get-vanilla-with-session-token",
       "GET",
       "/",
       {{"X-Amz-Security-Token",
         "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"}},
       "host;x-amz-date;x-amz-security-token",
       "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8",
       ""},
      {"post-x-www-form-urlencoded",
       "POST",
       "/",
       {{"Content-Type", "application/x-www-form-urlencoded"},
        {"Content-Length", "13"},
        {"x-amz-content-sha256",
         "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"}},
       "content-length;content-type;host;x-amz-content-sha256;x-amz-date",
       "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b",
       "Param1=value1"},
  };
  return cases;
}

const SuiteCase& suiteCase(std::string_view name) {
  for (const SuiteCase& c : suiteCases()) {
    if (c.name == name) return c;
  }
  throw std::logic_error("no suite case " + std::string(name));
}

Outcome verifySuite(const Request& request, int64_t now = kSuiteTime,
                    std::string_view service = kSuiteService) {
  return thatchd::sigv4::verify(request, suiteSecret, service, now);
}

std::optional<Refusal> refusalOf(const Outcome& outcome) {
  if (const Refusal* refusal = std::get_if<Refusal>(&outcome)) return *refusal;
  return std::nullopt;
}

// Sets every header named `name` (any case) to `value`.
void setHeader(Request& request, std::string_view name, const std::string& value) {
  for (auto& [headerName, headerValue] : request.headers) {
    if (strcasecmp(headerName.c_str(), std::string(name).c_str()) == 0) headerValue = value;
  }
}

void removeHeader(Request& request, std::string_view name) {
  std::erase_if(request.headers, [&](const auto& header) {
    return strcasecmp(header.first.c_str(), std::string(name).c_str()) == 0;
  });
}

TEST(SigV4, AwsTestSuiteRequestsVerify) {
  for (const SuiteCase& suiteCase : suiteCases()) {
    SCOPED_TRACE(suiteCase.name);
    Outcome outcome = verifySuite(received(suiteCase));
    ASSERT_FALSE(refusalOf(outcome)) << refusalOf(outcome)->message;
    const Verified& verified = std::get<Verified>(outcome);
    EXPECT_EQ(verified.accessKeyId, kSuiteKey);
    EXPECT_EQ(verified.region, "us-east-1");
    EXPECT_EQ(verified.service, kSuiteService);
    EXPECT_TRUE(verified.bodySigned);
  }
}

TEST(SigV4, CanonicalUriEncodesThePathOnceMore) {
  // A Lambda ARN as botocore sends it: the ':' already encoded once.
  EXPECT_EQ(canonicalUri("/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Afunction%3Af/"
                         "invocations"),
            "/2015-03-31/functions/arn%253Aaws%253Alambda%253Aus-east-1%253A1%253Afunction%253Af/"
            "invocations");
  EXPECT_EQ(canonicalUri(""), "/");
  EXPECT_EQ(canonicalUri("/a b/\xE1\x88\xB4/~x!"), "/a%20b/%E1%88%B4/~x%21");
  EXPECT_EQ(canonicalUri("//a/./b/../c//"), "/a/c/");
  EXPECT_EQ(canonicalUri("/a/b/../../.."), "/");
}

TEST(SigV4, CanonicalQueryDecodesReencodesAndSorts) {
  EXPECT_EQ(canonicalQuery("b=2&a=1&a=0&c&d=%7e%20x+y"), "a=0&a=1&b=2&c=&d=~%20x%2By");
  EXPECT_EQ(canonicalQuery("Qualifier=%24LATEST&x=a%2Fb%3Dc"), "Qualifier=%24LATEST&x=a%2Fb%3Dc");
  EXPECT_EQ(canonicalQuery("&&k=%zz%4"), "k=%25zz%254");
  EXPECT_EQ(canonicalQuery(""), "");
}

TEST(SigV4, MissingAuthorizationIsMissingAuthenticationToken) {
  Request request = received(suiteCase("get-vanilla"));
  removeHeader(request, "Authorization");
  auto refusal = refusalOf(verifySuite(request));
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->errorType, "MissingAuthenticationTokenException");
  EXPECT_EQ(refusal->message, "Missing Authentication Token");
}

TEST(SigV4, MalformedAuthorizationIsIncompleteSignature) {
  const std::string signature = suiteCase("get-vanilla").signature;
  const std::string credential = "Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";
  struct Malformed {
    std::string authorization;
    std::string messagePart;
  };
  const std::vector<Malformed> cases = {
      {"Bearer eyJhbGciOiJIUzI1NiJ9", "Authorization header requires 'Credential' parameter."},
      {"AWS4-HMAC-SHA256 " + credential + ", SignedHeaders=host;x-amz-date",
       "Authorization header requires 'Signature' parameter. Authorization="},
      {"AWS4-HMAC-SHA256 " + credential + ", Signature=" + signature,
       "Authorization header requires 'SignedHeaders' parameter."},
      {"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE /20150830/us-east-1/service/aws4_request, "
       "SignedHeaders=host;x-amz-date, Signature=" +
           signature,
       "'/20150830/us-east-1/service/aws4_request' not a valid key=value pair (missing "
       "equal-sign) in Authorization header"},
      {"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service, "
       "SignedHeaders=host;x-amz-date, Signature=" +
           signature,
       "Credential must have exactly 5 slash-delimited elements"},
      {"AWS4-HMAC-SHA256 " + credential + ", " + credential +
           ", SignedHeaders=host;x-amz-date, Signature=" + signature,
       "more than one 'Credential' parameter"},
  };
  for (const Malformed& malformed : cases) {
    SCOPED_TRACE(malformed.authorization);
    Request request = received(suiteCase("get-vanilla"));
    setHeader(request, "Authorization", malformed.authorization);
    auto refusal = refusalOf(verifySuite(request));
    ASSERT_TRUE(refusal);
    EXPECT_EQ(refusal->errorType, "IncompleteSignatureException");
    EXPECT_NE(refusal->message.find(malformed.messagePart), std::string::npos) << refusal->message;
  }

  Request noDate = received(suiteCase("get-vanilla"));
  removeHeader(noDate, "X-Amz-Date");
  auto refusal = refusalOf(verifySuite(noDate));
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->errorType, "IncompleteSignatureException");
  EXPECT_EQ(refusal->message,
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
            "Authorization=" +
                suiteAuthorization("host;x-amz-date", signature));

  Request badDate = received(suiteCase("get-vanilla"));
  setHeader(badDate, "X-Amz-Date", "2015-08-30T12:36:00Z");
  refusal = refusalOf(verifySuite(badDate));
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->errorType, "IncompleteSignatureException");
  EXPECT_NE(refusal->message.find("ISO-8601 'basic format'"), std::string::npos);

  Request twice = received(suiteCase("get-vanilla"));
  twice.headers.emplace_back("authorization", suiteAuthorization("host;x-amz-date", signature));
  refusal = refusalOf(verifySuite(twice));
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->errorType, "IncompleteSignatureException");
}

TEST(SigV4, UnknownAccessKeyIsUnrecognizedClient) {
  Request request = received(suiteCase("get-vanilla"));
  auto refusal = refusalOf(thatchd::sigv4::verify(
      request, [](std::string_view) -> const std::string* { return nullptr; }, kSuiteService,
      kSuiteTime));
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->errorType, "UnrecognizedClientException");
  EXPECT_EQ(refusal->message, "The security token included in the request is invalid.");
}

TEST(SigV4, ScopeOfAnotherServiceIsRefused) {
  auto refusal = refusalOf(verifySuite(received(suiteCase("get-vanilla")), kSuiteTime, "lambda"));
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->errorType, "InvalidSignatureException");
  EXPECT_EQ(refusal->message, "Credential should be scoped to correct service: 'lambda'. ");
}

TEST(SigV4, RequestMoreThanFiveMinutesFromNowIsRefused) {
  Request request = received(suiteCase("get-vanilla"));
  EXPECT_FALSE(refusalOf(verifySuite(request, kSuiteTime + 300)));
  EXPECT_FALSE(refusalOf(verifySuite(request, kSuiteTime - 300)));

  auto late = refusalOf(verifySuite(request, kSuiteTime + 301));
  ASSERT_TRUE(late);
  EXPECT_EQ(late->errorType, "InvalidSignatureException");
  EXPECT_EQ(late->message,
            "Signature expired: 20150830T123600Z is now earlier than 20150830T123601Z "
            "(20150830T124101Z - 5 min.)");

  auto early = refusalOf(verifySuite(request, kSuiteTime - 301));
  ASSERT_TRUE(early);
  EXPECT_EQ(early->errorType, "InvalidSignatureException");
  EXPECT_EQ(early->message,
            "Signature not yet current: 20150830T123600Z is still later than 20150830T123559Z "
            "(20150830T123059Z + 5 min.)");
}

TEST(SigV4, WrongSecretIsSignatureMismatch) {
  const std::string otherSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEZ";
  auto refusal = refusalOf(thatchd::sigv4::verify(
      received(suiteCase("get-vanilla")), [&](std::string_view) { return &otherSecret; },
      kSuiteService, kSuiteTime));
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->errorType, "InvalidSignatureException");
  EXPECT_EQ(refusal->message, kMismatch);
}

TEST(SigV4, HostMustBeSigned) {
  SuiteCase unsignedHost = suiteCase("get-vanilla");
  unsignedHost.signedHeaders = "x-amz-date";
  auto refusal = refusalOf(verifySuite(received(unsignedHost)));
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->errorType, "InvalidSignatureException");
  EXPECT_EQ(refusal->message,
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
}

TEST(SigV4, SignedHeadersMustBeSortedLowercaseAndPresent) {
  for (std::string signedHeaders : {"x-amz-date;host", "Host;x-amz-date", "host;host;x-amz-date",
                                    "host;;x-amz-date", "host;my-header9;x-amz-date"}) {
    SCOPED_TRACE(signedHeaders);
    SuiteCase suiteCase = ::suiteCase("get-vanilla");
    suiteCase.signedHeaders = signedHeaders;
    auto refusal = refusalOf(verifySuite(received(suiteCase)));
    ASSERT_TRUE(refusal);
    EXPECT_EQ(refusal->errorType, "IncompleteSignatureException");
  }
}

TEST(SigV4, ContentSha256MustMatchTheBody) {
  Request request = received(suiteCase("post-x-www-form-urlencoded"));
  request.body = "Param1=value2";
  auto refusal = refusalOf(verifySuite(request));
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->errorType, "InvalidSignatureException");
  EXPECT_EQ(refusal->message,
            "The provided 'x-amz-content-sha256' header does not match what was computed.");
}

TEST(SigV4, TamperedRequestsAreRefused) {
  auto expectMismatch = [](const Request& request, int64_t now = kSuiteTime) {
    auto refusal = refusalOf(verifySuite(request, now));
    ASSERT_TRUE(refusal);
    EXPECT_EQ(refusal->errorType, "InvalidSignatureException");
    EXPECT_EQ(refusal->message, kMismatch);
  };
  {
    SCOPED_TRACE("body, with the body's hash changed to match");
    Request request = received(suiteCase("post-x-www-form-urlencoded"));
    request.body = "Param1=value2";
    setHeader(request, "x-amz-content-sha256",
              "2625b6c54eccd25adcc945e1e2896a5fd42161860de6fd179d4b3945a57ce417");
    expectMismatch(request);
  }
  {
    SCOPED_TRACE("body, without x-amz-content-sha256");
    SuiteCase suiteCase = ::suiteCase("post-vanilla");
    suiteCase.body = "{}";
    expectMismatch(received(suiteCase));
  }
  {
    SCOPED_TRACE("signed header");
    Request request = received(suiteCase("get-header-value-trim"));
    setHeader(request, "My-Header1", "value2");
    expectMismatch(request);
  }
  {
    SCOPED_TRACE("path");
    Request request = received(suiteCase("get-utf8"));
    request.target = "/%E1%88%B4";  // the same path encoded: another canonical URI
    expectMismatch(request);
  }
  {
    SCOPED_TRACE("query");
    Request request = received(suiteCase("get-vanilla-query-order-key-case"));
    request.target = "/?Param2=value2&Param1=value2";
    expectMismatch(request);
  }
  {
    SCOPED_TRACE("method");
    Request request = received(suiteCase("get-vanilla"));
    request.method = "POST";
    expectMismatch(request);
  }
  {
    SCOPED_TRACE("time, same day");
    Request request = received(suiteCase("get-vanilla"));
    setHeader(request, "X-Amz-Date", "20150830T123601Z");
    expectMismatch(request);
  }
  {
    SCOPED_TRACE("time, another day than the credential's");
    Request request = received(suiteCase("get-vanilla"));
    setHeader(request, "X-Amz-Date", "20150831T123600Z");
    auto refusal = refusalOf(verifySuite(request, kSuiteTime + 86400));
    ASSERT_TRUE(refusal);
    EXPECT_EQ(refusal->errorType, "InvalidSignatureException");
    EXPECT_NE(refusal->message.find("Date in Credential scope does not match"), std::string::npos);
  }
}

TEST(SigV4, HostileInputIsRefusedWithoutThrowing) {
  const SuiteCase& original = suiteCase("post-x-www-form-urlencoded");
  const Request valid = received(original);
  const std::string authorization = suiteAuthorization(original.signedHeaders, original.signature);

  // Every cut of the Authorization header short of the whole is refused.
  for (size_t length = 0; length < authorization.size(); ++length) {
    Request request = valid;
    setHeader(request, "Authorization", authorization.substr(0, length));
    Outcome outcome;
    ASSERT_NO_THROW(outcome = verifySuite(request)) << length;
    EXPECT_TRUE(refusalOf(outcome)) << length;
  }

  // Any byte of the body or of the signature changed is refused; bytes of
  // the rest changed at random are at least survived.
  std::mt19937 random(20150830);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int round = 0; round < 2000; ++round) {
    Request request = valid;
    std::string body(original.body);
    auto mutate = [&](std::string& text) {
      if (text.empty()) return;
      size_t at = std::uniform_int_distribution<size_t>(0, text.size() - 1)(random);
      char replacement = static_cast<char>(byte(random));
      if (replacement == text[at]) replacement = static_cast<char>(replacement ^ 0x20);
      text[at] = replacement;
    };
    size_t part = round % (request.headers.size() + 3);
    bool mustRefuse = false;
    if (part == 0) {
      mutate(body);
      request.body = body;
      mustRefuse = true;
    } else if (part == 1) {
      std::string signature = original.signature;
      mutate(signature);
      setHeader(request, "Authorization", suiteAuthorization(original.signedHeaders, signature));
      mustRefuse = true;
    } else if (part == 2) {
      mutate(request.target);
    } else {
      auto& [name, value] = request.headers[part - 3];
      mutate(round % 2 == 0 ? name : value);
    }
    Outcome outcome;
    ASSERT_NO_THROW(outcome = verifySuite(request)) << round;
    if (mustRefuse) {
      EXPECT_TRUE(refusalOf(outcome)) << round;
    }
  }

  // Big inputs: linear work, refused.
  Request big = valid;
  big.target = "/";
  for (int i = 0; i < 100000; ++i) big.target += "../a/";
  big.target += "?";
  for (int i = 0; i < 100000; ++i) big.target += "p" + std::to_string(i % 977) + "=%zz&";
  for (int i = 0; i < 10000; ++i) big.headers.emplace_back("X-Junk", std::string(10, ' '));
  Outcome outcome;
  ASSERT_NO_THROW(outcome = verifySuite(big));
  EXPECT_TRUE(refusalOf(outcome));
}

// ---- against botocore ----

constexpr std::string_view kBotocoreKey = "AKIDBOTOCORE";
const std::string kBotocoreSecret = "botocore/Secret+Key";

// Signs Lambda requests with botocore and prints them: "case NAME", then
// "method", "target", "body" (hex) and "header NAME<TAB>VALUE" lines, "end".
// An Invoke goes through botocore's own Lambda client (its serializer encodes
// the ARN in the path), stopped before it is sent; the Date-header and
// unsigned-payload forms come from SigV4Auth itself.
constexpr const char* kBotocoreScript = R"PY(
import json, os
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
from urllib.parse import urlsplit
import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

KEY, SECRET, TOKEN = "AKIDBOTOCORE", "botocore/Secret+Key", "session/token+with=chars"

def emit(name, method, url, headers, body):
    if hasattr(body, "read"):
        body = body.read()
    if isinstance(body, str):
        body = body.encode()
    parts = urlsplit(url)
    print("case", name)
    print("method", method)
    print("target", parts.path + ("?" + parts.query if parts.query else ""))
    print("body", (body or b"").hex())
    names = [k.lower() for k in headers.keys()]
    if "host" not in names:
        print("header Host\t" + parts.netloc)
    for k, v in headers.items():
        print("header " + k + "\t" + (v.decode() if isinstance(v, bytes) else v))
    print("end")

class Captured(Exception):
    pass

def capture(request, **kwargs):
    raise Captured(request)

client = botocore.session.get_session().create_client(
    "lambda", region_name="us-east-1", aws_access_key_id=KEY,
    aws_secret_access_key=SECRET, aws_session_token=TOKEN)
client.meta.events.register("before-send.lambda.Invoke", capture)
try:
    client.invoke(FunctionName="arn:aws:lambda:us-east-1:123456789012:function:my-function",
                  Qualifier="$LATEST",
                  Payload=json.dumps({"greeting": "hello  world", "n": 1}))
    raise SystemExit("botocore sent the request instead of handing it over")
except Captured as captured:
    sent = captured.args[0]
    emit("invoke", sent.method, sent.url, sent.headers, sent.body)

url = ("https://lambda.us-east-1.amazonaws.com/2015-03-31/functions/"
       "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Amy-function/invocations"
       "?Qualifier=%24LATEST&Extra=a%20b%2Fc%E1%88%B4&Empty=")
body = json.dumps({"k": "v"}).encode()
for name, headers, context in [
        ("date-header", {"Date": "now"}, {}),
        ("unsigned-payload", {}, {"payload_signing_enabled": False})]:
    request = AWSRequest(method="POST", url=url, data=body,
                         headers=dict({"Content-Type": "application/json"}, **headers))
    request.context.update(context)
    SigV4Auth(Credentials(KEY, SECRET), "lambda", "us-east-1").add_auth(request)
    emit(name, request.method, request.url, request.headers, request.body)
)PY";

struct SignedByBotocore {
  std::string name;
  std::string method;
  std::string target;
  std::string body;
  Headers headers;
};

// Runs `command` through the shell: its exit status and standard output.
std::pair<int, std::string> run(const std::string& command) {
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return {-1, ""};
  std::string output;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  return {pclose(pipe), output};
}

// The Python that has botocore: Debian's python3-botocore installs it for
// /usr/bin/python3, which another python3 on the PATH may hide.
std::optional<std::string> pythonWithBotocore() {
  for (std::string python : {"/usr/bin/python3", "python3"}) {
    if (run(python + " -c 'import botocore' >/dev/null 2>&1").first == 0) return python;
  }
  return std::nullopt;
}

std::string fromHex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
  }
  return out;
}

std::vector<SignedByBotocore> parseSigned(const std::string& output) {
  std::vector<SignedByBotocore> signedRequests;
  std::istringstream lines(output);
  std::string line;
  while (std::getline(lines, line)) {
    size_t space = line.find(' ');
    std::string key = line.substr(0, space);
    std::string rest = space == std::string::npos ? "" : line.substr(space + 1);
    if (key == "case") {
      signedRequests.push_back({rest, "", "", "", {}});
    } else if (signedRequests.empty() || key == "end") {
      continue;
    } else if (key == "method") {
      signedRequests.back().method = rest;
    } else if (key == "target") {
      signedRequests.back().target = rest;
    } else if (key == "body") {
      signedRequests.back().body = fromHex(rest);
    } else if (key == "header") {
      size_t tab = rest.find('\t');
      signedRequests.back().headers.emplace_back(rest.substr(0, tab), rest.substr(tab + 1));
    }
  }
  return signedRequests;
}

std::string headerOf(const Headers& headers, std::string_view name) {
  for (const auto& [headerName, value] : headers) {
    if (strcasecmp(headerName.c_str(), std::string(name).c_str()) == 0) return value;
  }
  return "";
}

// When botocore signed: its X-Amz-Date, or its Date header.
int64_t signingTime(const Headers& headers) {
  std::tm parts{};
  std::string amzDate = headerOf(headers, "X-Amz-Date");
  const char* end =
      amzDate.empty() ? strptime(headerOf(headers, "Date").c_str(), "%a, %d %b %Y %H:%M:%S", &parts)
                      : strptime(amzDate.c_str(), "%Y%m%dT%H%M%SZ", &parts);
  if (end == nullptr) throw std::runtime_error("botocore signed no readable date");
  return timegm(&parts);
}

Outcome verifyBotocore(const Request& request, int64_t now, std::string_view service = "lambda") {
  return thatchd::sigv4::verify(
      request,
      [](std::string_view key) { return key == kBotocoreKey ? &kBotocoreSecret : nullptr; },
      service, now);
}

TEST(SigV4, BotocoreSignedLambdaRequestsVerify) {
  std::optional<std::string> python = pythonWithBotocore();
  if (!python) {
    FAIL() << "this test needs python3 with botocore, which signs the requests it verifies: "
              "`apt-get install -y python3-botocore` (`make deps` installs it)";
  }
  auto [status, output] = run(*python + " -c '" + kBotocoreScript + "' 2>&1");
  ASSERT_EQ(status, 0) << output;
  std::vector<SignedByBotocore> signedRequests = parseSigned(output);
  ASSERT_EQ(signedRequests.size(), 3u) << output;

  for (const SignedByBotocore& sent : signedRequests) {
    SCOPED_TRACE(sent.name + "\n" + output);
    Request request{sent.method, sent.target, sent.headers, sent.body};
    int64_t now = signingTime(sent.headers);
    Outcome outcome = verifyBotocore(request, now);
    ASSERT_FALSE(refusalOf(outcome)) << refusalOf(outcome)->message;
    const Verified& verified = std::get<Verified>(outcome);
    EXPECT_EQ(verified.accessKeyId, kBotocoreKey);
    EXPECT_EQ(verified.region, "us-east-1");
    EXPECT_EQ(verified.service, "lambda");
    EXPECT_EQ(verified.bodySigned, sent.name != "unsigned-payload");

    std::string path = sent.target.substr(0, sent.target.find('?'));
    EXPECT_NE(path.find("arn%3Aaws%3Alambda"), std::string::npos);
    EXPECT_NE(canonicalUri(path).find("arn%253Aaws%253Alambda"), std::string::npos);

    auto refusal = refusalOf(verifyBotocore(request, now, "service"));
    ASSERT_TRUE(refusal);
    EXPECT_EQ(refusal->message, "Credential should be scoped to correct service: 'service'. ");

    std::string tamperedBody = sent.body + " ";
    Request tampered = request;
    tampered.body = tamperedBody;
    Outcome tamperedOutcome = verifyBotocore(tampered, now);
    if (verified.bodySigned) {
      ASSERT_TRUE(refusalOf(tamperedOutcome));
      EXPECT_EQ(refusalOf(tamperedOutcome)->message, kMismatch);
    } else {
      EXPECT_FALSE(refusalOf(tamperedOutcome));  // what UNSIGNED-PAYLOAD means
    }
  }
  EXPECT_NE(headerOf(signedRequests[0].headers, "X-Amz-Security-Token"), "");
  EXPECT_NE(signedRequests[0].target.find("?Qualifier=%24LATEST"), std::string::npos);
  EXPECT_NE(headerOf(signedRequests[1].headers, "Date"), "");
  EXPECT_EQ(headerOf(signedRequests[1].headers, "X-Amz-Date"), "");
  EXPECT_EQ(headerOf(signedRequests[2].headers, "X-Amz-Content-SHA256"), "UNSIGNED-PAYLOAD");
}

}  // namespace
