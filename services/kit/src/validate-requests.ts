import { create, type DescMessage, type Message } from "@bufbuild/protobuf";
import { pathToString } from "@bufbuild/protobuf/reflect";
import { createValidator, violationsToProto, type Violation } from "@bufbuild/protovalidate";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

// One validator for the process: it compiles each message type's rules once
// and keeps them.
const validator = createValidator();

// Checks every request message against the protovalidate rules in its proto
// (`(buf.validate.field)` options): a unary request before the handler runs,
// each message of a request stream as the handler reads it. A message that
// breaks a rule is refused with invalid_argument (resource_exhausted when it
// only has too many bytes or items), naming each field and what
// is wrong with it; the violations also travel as a buf.validate.Violations
// error detail. A streamed message that does not decode is invalid_argument
// too (Connect says internal).
export const validateRequests: Interceptor = (next) => async (req) => {
  if (!req.stream) {
    check(req.method.input, req.message);
    return next(req);
  }
  return next({ ...req, message: checkEach(req.method.input, req.message) });
};

async function* checkEach(schema: DescMessage, messages: AsyncIterable<Message>): AsyncIterable<Message> {
  const iterator = messages[Symbol.asyncIterator]();
  for (;;) {
    let next: IteratorResult<Message>;
    try {
      next = await iterator.next();
    } catch (err) {
      const detail = err instanceof ConnectError && err.code === Code.Internal ? undecodable(err.rawMessage) : undefined;
      throw detail === undefined ? err : new ConnectError(detail, Code.InvalidArgument);
    }
    if (next.done) return;
    check(schema, next.value);
    yield next.value;
  }
}

// What to tell a caller whose protobuf message did not decode, given
// Connect's internal error message; undefined if it is not about that.
export function undecodable(message: string): string | undefined {
  const prefix = "parse binary: ";
  if (!message.startsWith(prefix)) return undefined;
  return `the request body is not a valid protobuf message for this method: ${message.slice(prefix.length)}`;
}

// Compiles the rules of these request types in the background, a type at a
// time, so that no caller's first request waits for it.
export function prepareValidation(schemas: DescMessage[]): void {
  const [next, ...rest] = schemas;
  if (!next) return;
  setImmediate(() => {
    validator.validate(next, create(next));
    prepareValidation(rest);
  }).unref();
}

// What is wrong with a message by its protovalidate rules, for a request
// that comes another way than Connect (a plain HTTP route); undefined: nothing.
export function requestProblem(schema: DescMessage, message: Message): string | undefined {
  const result = validator.validate(schema, message);
  if (result.kind === "error") throw result.error;
  return result.kind === "valid" ? undefined : describe(schema, result.violations);
}

function check(schema: DescMessage, message: Message): void {
  const result = validator.validate(schema, message);
  if (result.kind === "valid") return;
  // A rule that cannot be compiled or evaluated is a bug of ours, not the
  // caller's: it surfaces as an internal error (and goes to the log).
  if (result.kind === "error") throw result.error;
  const [violations, violationsSchema] = violationsToProto(result.violations);
  // Too much of something (bytes, items) is a limit reached, as it is for a
  // body over the size limit: resource_exhausted.
  const tooMuch = result.violations.every((v) => /\.max_(bytes|items)$/.test(v.ruleId));
  throw new ConnectError(describe(schema, result.violations), tooMuch ? Code.ResourceExhausted : Code.InvalidArgument, undefined, [
    { desc: violationsSchema, value: violations },
  ]);
}

// "invalid SubmitRunRequest: pipeline_yaml: must be at most 1048576 bytes; request_id: ..."
export function describe(schema: DescMessage, violations: Violation[]): string {
  const problems = violations.map((v) => {
    const path = pathToString(v.field);
    return (path ? `${path}: ` : "") + v.message;
  });
  return `invalid ${schema.name}: ${problems.join("; ")}`;
}
