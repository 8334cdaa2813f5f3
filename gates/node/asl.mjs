// Two validators nobody here wrote judge a state machine definition (Amazon States Language):
// npm asl-validator (the schema and JSONPath rules) and AWS's amazon-states-language-service (the
// language service behind the AWS Toolkit: states that exist, reachable, fields allowed).
// Reads the definition on stdin; prints {"asl-validator": [...], "amazon-states-language-service": [...]}.
import { readFileSync } from "node:fs";
import aslValidator from "asl-validator";
import { getLanguageService } from "amazon-states-language-service";
import { TextDocument } from "vscode-languageserver-textdocument";

const text = readFileSync(0, "utf8");
const { errors } = aslValidator(JSON.parse(text));
const service = getLanguageService({});
const document = TextDocument.create("file:///definition.asl.json", "json", 1, text);
const diagnostics = await service.doValidation(document, service.parseJSONDocument(document));
console.log(JSON.stringify({
  "asl-validator": errors.map((e) => e.Message ?? JSON.stringify(e)),
  "amazon-states-language-service": diagnostics.map((d) => d.message),
}));
