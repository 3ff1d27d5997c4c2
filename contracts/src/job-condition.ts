// A job's condition (`if:` in YAML): the expressions GitHub Actions users
// write there, as far as Otto has the facts they ask about. Parsed once into
// a small tree of plain data (JSON-serialisable), evaluated when the job's
// needs are done.
//
//   expression := or                      (optionally inside ${{ ... }})
//   or         := and ('||' and)*
//   and        := comparison ('&&' comparison)*
//   comparison := unary (('==' | '!=') unary)?
//   unary      := '!' unary | primary
//   primary    := '(' or ')' | 'text' | "text" | true | false
//               | success() | failure() | always() | cancelled()
//               | branch | event | env.NAME
//
// As on GitHub: `&&` and `||` give one of their operands, `==` and `!=`
// compare strings ignoring case, a string is true when it is not empty, and
// an expression that calls none of the status functions means
// `success() && (expression)`. Unlike GitHub, a string is never compared
// with a boolean (GitHub turns both into numbers): that is refused here.
import { pipelineLimits } from "./pipeline-limits.ts";
import { suggestion } from "./suggestion.ts";

export type StatusFunction = "success" | "failure" | "always" | "cancelled";

export const statusFunctions: readonly StatusFunction[] = ["success", "failure", "always", "cancelled"];

export type JobCondition =
  | { kind: "string"; value: string }
  | { kind: "boolean"; value: boolean }
  | { kind: "status"; name: StatusFunction }
  | { kind: "branch" }
  | { kind: "event" }
  | { kind: "env"; name: string }
  | { kind: "not"; operand: JobCondition }
  | { kind: "and" | "or"; left: JobCondition; right: JobCondition }
  | { kind: "compare"; operator: "==" | "!="; left: JobCondition; right: JobCondition };

export type ConditionParse = { ok: true; condition: JobCondition } | { ok: false; offset: number; message: string };

export interface ConditionContext {
  success: boolean; // every need succeeded
  failure: boolean; // some need failed
  cancelled: boolean; // the run is being canceled
  branch: string;
  event: string;
  env: Record<string, string>;
}

/** The condition of a job without one. */
export const defaultCondition: JobCondition = { kind: "status", name: "success" };

/** How deep '(' and '!' may nest; conditions never need more. */
export const maxConditionNesting = 32;

/** `offset` is the 0-based index in `text` of the character the message is about. */
export function parseCondition(text: string): ConditionParse {
  const tooLong = lengthProblem(text);
  if (tooLong) return { ok: false, ...tooLong };
  try {
    return { ok: true, condition: new ConditionParser(text).parse() };
  } catch (error) {
    if (error instanceof ConditionSyntaxError) return { ok: false, offset: error.offset, message: error.message };
    throw error;
  }
}

export function evaluateCondition(condition: JobCondition, context: ConditionContext): boolean {
  const value = isTrue(valueOf(condition, context));
  return calledStatusFunctions(condition).size > 0 ? value : context.success && value;
}

/**
 * The status functions the condition depends on: those it calls, or
 * success() alone when it calls none (and so means `success() && ...`).
 */
export function conditionStatusFunctions(condition: JobCondition): Set<StatusFunction> {
  const called = calledStatusFunctions(condition);
  return called.size > 0 ? called : new Set(["success"]);
}

function calledStatusFunctions(condition: JobCondition): Set<StatusFunction> {
  const called = new Set<StatusFunction>();
  walk(condition, (node) => {
    if (node.kind === "status") called.add(node.name);
  });
  return called;
}

function walk(node: JobCondition, visit: (node: JobCondition) => void): void {
  visit(node);
  if (node.kind === "not") walk(node.operand, visit);
  else if (node.kind === "and" || node.kind === "or" || node.kind === "compare") {
    walk(node.left, visit);
    walk(node.right, visit);
  }
}

type Value = string | boolean;

function valueOf(node: JobCondition, context: ConditionContext): Value {
  switch (node.kind) {
    case "string":
    case "boolean":
      return node.value;
    case "status":
      return node.name === "always" ? true : context[node.name];
    case "branch":
      return context.branch;
    case "event":
      return context.event;
    case "env":
      return Object.hasOwn(context.env, node.name) ? context.env[node.name] : "";
    case "not":
      return !isTrue(valueOf(node.operand, context));
    case "and": {
      const left = valueOf(node.left, context);
      return isTrue(left) ? valueOf(node.right, context) : left;
    }
    case "or": {
      const left = valueOf(node.left, context);
      return isTrue(left) ? left : valueOf(node.right, context);
    }
    case "compare": {
      const same = equal(valueOf(node.left, context), valueOf(node.right, context));
      return node.operator === "==" ? same : !same;
    }
  }
}

function isTrue(value: Value): boolean {
  return typeof value === "string" ? value !== "" : value;
}

function equal(left: Value, right: Value): boolean {
  if (typeof left === "string" && typeof right === "string") return left.toLowerCase() === right.toLowerCase();
  return left === right;
}

// Parsing.

class ConditionSyntaxError extends Error {
  readonly offset: number;

  constructor(offset: number, message: string) {
    super(message);
    this.offset = offset;
  }
}

function lengthProblem(text: string): { offset: number; message: string } | undefined {
  const max = pipelineLimits.conditionChars;
  if (text.length <= max) return undefined; // UTF-16 units are never fewer than characters
  // Characters as protovalidate's max_len counts them: code points.
  let characters = 0;
  let offset = -1;
  for (let i = 0; i < text.length; i += (text.codePointAt(i) ?? 0) > 0xffff ? 2 : 1) {
    if (++characters === max + 1) offset = i;
  }
  if (offset < 0) return undefined;
  return { offset, message: `the 'if' expression is ${characters} characters long, at most ${max} allowed` };
}

type ValueType = "string" | "boolean" | "string or boolean";

interface Parsed {
  condition: JobCondition;
  type: ValueType;
}

type TokenKind = "(" | ")" | "," | "." | "!" | "==" | "!=" | "&&" | "||" | "string" | "name" | "end";

interface Token {
  kind: TokenKind;
  start: number;
  value: string; // a string's text, a name
}

const NAMES = ["branch", "event", "env", "true", "false"];
const NAME_LIST = "branch, event, env.NAME, true and false";
const FUNCTION_LIST = "success(), failure(), always() and cancelled()";
const NAME_START = /[A-Za-z_]/;
const NAME_PART = /[A-Za-z0-9_-]/;
const SPACE = /[ \t\r\n]/;
const OPERATORS = ["==", "!=", "&&", "||"] as const;

/** Recursive descent over tokens read one at a time, so the first problem in the text is the one reported. */
class ConditionParser {
  readonly #text: string;
  #start = 0;
  #end: number;
  #position = 0;
  #token: Token | undefined;
  #previous: Token | undefined;
  #depth = 0;

  constructor(text: string) {
    this.#text = text;
    this.#end = text.length;
  }

  parse(): JobCondition {
    this.#unwrap();
    this.#position = this.#start;
    if (this.#peek().kind === "end") throw new ConditionSyntaxError(this.#start, "the 'if' expression is empty; write a condition such as success() or branch == 'main'");
    const parsed = this.#or();
    const next = this.#peek();
    if (next.kind !== "end") {
      if (next.kind === ")") this.#fail(next, "unexpected ')': no '(' is open here");
      const join = ["name", "string", "(", "!"].includes(next.kind) ? "; join conditions with && or ||" : "";
      this.#fail(next, `unexpected ${describe(next)} after the expression${join}`);
    }
    return parsed.condition;
  }

  /** `${{ expression }}` around the whole text: parse only what is inside. */
  #unwrap(): void {
    const text = this.#text;
    let start = 0;
    while (start < text.length && SPACE.test(text[start])) start++;
    if (!text.startsWith("${{", start)) return;
    let end = text.length;
    while (end > start && SPACE.test(text[end - 1])) end--;
    if (end - start < 5 || !text.startsWith("}}", end - 2)) throw new ConditionSyntaxError(end, "missing '}}' to close '${{'");
    this.#start = start + 3;
    this.#end = end - 2;
  }

  #or(): Parsed {
    let left = this.#and();
    while (this.#peek().kind === "||") {
      this.#next();
      const right = this.#and();
      left = { condition: { kind: "or", left: left.condition, right: right.condition }, type: either(left.type, right.type) };
    }
    return left;
  }

  #and(): Parsed {
    let left = this.#comparison();
    while (this.#peek().kind === "&&") {
      this.#next();
      const right = this.#comparison();
      left = { condition: { kind: "and", left: left.condition, right: right.condition }, type: either(left.type, right.type) };
    }
    return left;
  }

  #comparison(): Parsed {
    const left = this.#unary();
    const operator = this.#peek();
    if (operator.kind !== "==" && operator.kind !== "!=") return left;
    this.#next();
    const right = this.#unary();
    if (left.type !== right.type || left.type === "string or boolean") this.#fail(operator, mismatch(operator.kind, left, right));
    const chained = this.#peek();
    if (chained.kind === "==" || chained.kind === "!=") this.#fail(chained, `comparisons do not chain: put parentheses around the comparison before '${chained.kind}'`);
    return { condition: { kind: "compare", operator: operator.kind, left: left.condition, right: right.condition }, type: "boolean" };
  }

  #unary(): Parsed {
    const token = this.#peek();
    if (token.kind !== "!") return this.#primary();
    this.#next();
    this.#deeper(token);
    const operand = this.#unary();
    this.#depth--;
    return { condition: { kind: "not", operand: operand.condition }, type: "boolean" };
  }

  #primary(): Parsed {
    const before = this.#previous;
    const token = this.#next();
    switch (token.kind) {
      case "(": {
        this.#deeper(token);
        const inner = this.#or();
        const close = this.#next();
        if (close.kind === "end") this.#fail(close, "missing ')': a '(' is still open at the end of the expression");
        if (close.kind !== ")") this.#fail(close, `expected ')' to close '(', got ${describe(close)}`);
        this.#depth--;
        return inner;
      }
      case "string":
        return { condition: { kind: "string", value: token.value }, type: "string" };
      case "name":
        return this.#nextCharIs("(") ? this.#call(token) : this.#name(token);
      case "end": {
        const after = before ? ` after ${describe(before)}` : "";
        return this.#fail(token, `the expression ends${after} where a value is expected, such as success() or 'text'`);
      }
      default:
        return this.#fail(token, `expected a value, such as success(), branch or 'text', got ${describe(token)}`);
    }
  }

  #call(name: Token): Parsed {
    const fn = statusFunctions.find((candidate) => candidate === name.value);
    if (fn === undefined) {
      if (NAMES.includes(name.value)) this.#fail(name, `'${name.value}' is not a function; write ${name.value === "env" ? "env.NAME" : name.value} without '('`);
      this.#fail(name, `unknown function '${shorten(name.value)}'${suggestion(name.value, statusFunctions) || `; the functions are ${FUNCTION_LIST}`}`);
    }
    this.#next(); // (
    // Checked on the text, so that an argument is refused as one, whatever it is.
    const argument = this.#skipSpace(this.#position);
    if (argument >= this.#end) throw new ConditionSyntaxError(argument, `missing ')' after '${fn}('`);
    if (this.#text[argument] !== ")") throw new ConditionSyntaxError(argument, `${fn}() takes no arguments; write ${fn}()`);
    this.#next(); // )
    return { condition: { kind: "status", name: fn }, type: "boolean" };
  }

  #name(name: Token): Parsed {
    switch (name.value) {
      case "true":
      case "false":
        return { condition: { kind: "boolean", value: name.value === "true" }, type: "boolean" };
      case "branch":
      case "event":
        return { condition: { kind: name.value }, type: "string" };
      case "env": {
        const dot = this.#next();
        if (dot.kind !== ".") this.#fail(dot, "write env.NAME for the environment variable NAME, e.g. env.DEPLOY_TARGET");
        const start = this.#position;
        let end = start;
        while (end < this.#end && NAME_PART.test(this.#text[end])) end++;
        const variable = this.#text.slice(start, end);
        if (variable === "") throw new ConditionSyntaxError(start, "expected the name of an environment variable right after 'env.'");
        if (!pipelineLimits.envName.test(variable)) {
          throw new ConditionSyntaxError(start, `invalid environment variable name '${shorten(variable)}': use letters, digits and '_', not starting with a digit`);
        }
        this.#position = end;
        return { condition: { kind: "env", name: variable }, type: "string" };
      }
    }
    if ((statusFunctions as readonly string[]).includes(name.value)) this.#fail(name, `${name.value} is a function: write ${name.value}()`);
    return this.#fail(name, `unknown name '${shorten(name.value)}'${suggestion(name.value, NAMES) || `; the names are ${NAME_LIST}`}`);
  }

  #deeper(token: Token): void {
    if (++this.#depth > maxConditionNesting) this.#fail(token, `'(' and '!' nested more than ${maxConditionNesting} deep; a condition never needs that`);
  }

  #fail(token: Token, message: string): never {
    throw new ConditionSyntaxError(token.start, message);
  }

  /** Whether the next character that is not a space is `char`; only between tokens (none peeked). */
  #nextCharIs(char: string): boolean {
    const at = this.#skipSpace(this.#position);
    return at < this.#end && this.#text[at] === char;
  }

  #skipSpace(at: number): number {
    while (at < this.#end && SPACE.test(this.#text[at])) at++;
    return at;
  }

  #peek(): Token {
    this.#token ??= this.#read();
    return this.#token;
  }

  #next(): Token {
    const token = this.#peek();
    this.#token = undefined;
    this.#previous = token;
    return token;
  }

  #read(): Token {
    const text = this.#text;
    const at = this.#skipSpace(this.#position);
    const token = (kind: TokenKind, length: number, value = ""): Token => {
      this.#position = at + length;
      return { kind, start: at, value };
    };
    if (at >= this.#end) return token("end", 0);
    const char = text[at];
    const two = text.slice(at, Math.min(at + 2, this.#end));
    const operator = OPERATORS.find((candidate) => candidate === two);
    if ((operator === "==" || operator === "!=") && text[at + 2] === "=" && at + 2 < this.#end) {
      throw new ConditionSyntaxError(at, `'${operator}=' is not an operator; write '${operator}'`);
    }
    if (operator) return token(operator, 2);
    if ("()!,.".includes(char)) return token(char as TokenKind, 1);
    if (char === "'" || char === '"') return this.#string(at);
    if (NAME_START.test(char)) {
      let end = at + 1;
      while (end < this.#end && NAME_PART.test(text[end])) end++;
      return token("name", end - at, text.slice(at, end));
    }
    throw new ConditionSyntaxError(at, characterProblem(text.slice(at, this.#end)));
  }

  /** 'text' or "text"; the quote written twice stands for itself, as in GitHub's 'it''s'. */
  #string(start: number): Token {
    const text = this.#text;
    const quote = text[start];
    let value = "";
    let at = start + 1;
    for (;;) {
      const close = text.indexOf(quote, at);
      if (close < 0 || close >= this.#end) throw new ConditionSyntaxError(start, `unterminated string: add the closing ${quote}`);
      value += text.slice(at, close);
      if (text[close + 1] === quote && close + 1 < this.#end) {
        value += quote;
        at = close + 2;
        continue;
      }
      this.#position = close + 1;
      return { kind: "string", start, value };
    }
  }
}

function either(left: ValueType, right: ValueType): ValueType {
  return left === right ? left : "string or boolean";
}

function mismatch(operator: string, left: Parsed, right: Parsed): string {
  const literal = [left, right].find((side) => side.condition.kind === "boolean");
  let hint = literal && literal.condition.kind === "boolean" ? `; to compare with the text, quote it: '${literal.condition.value}'` : "";
  if (left.condition.kind === "not") hint = `; '!' applies to the value before '${operator}': write !(a ${operator} b) to negate the comparison`;
  const article = (type: ValueType) => (type === "string" ? "a string" : type === "boolean" ? "a boolean" : "a string or a boolean");
  return `'${operator}' cannot compare ${article(left.type)} with ${article(right.type)}${hint}`;
}

function characterProblem(rest: string): string {
  if (/^\d/.test(rest)) return `numbers are not supported; compare with the text instead, e.g. '${/^[\d.]+/.exec(rest)?.[0]}'`;
  const brace = ["${{", "}}"].find((written) => rest.startsWith(written));
  if (brace) return "unexpected '" + brace + "': '${{ }}' may only enclose the whole expression";
  if (/^[<>]/.test(rest)) return `'${/^[<>]=?/.exec(rest)?.[0]}' is not supported; only == and != compare`;
  if (rest.startsWith("=")) return "write '==' to compare";
  if (rest.startsWith("&")) return "write '&&' for 'and'";
  if (rest.startsWith("|")) return "write '||' for 'or'";
  const char = String.fromCodePoint(rest.codePointAt(0) ?? 0);
  return `unexpected character '${char}'`;
}

function describe(token: Token): string {
  switch (token.kind) {
    case "end":
      return "the end of the expression";
    case "string":
      return `'${shorten(token.value).replaceAll("'", "''")}'`;
    default:
      return `'${token.kind === "name" ? shorten(token.value) : token.kind}'`;
  }
}

/** Text from the expression as a message quotes it: a long one cut short. */
function shorten(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}...` : text;
}
