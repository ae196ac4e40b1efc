// The Prompt API's IDL dictionaries and enums (webmachinelearning/prompt-api, index.bs) as
// TypeScript types. Values that come from page code are checked at run time (canonicalize.ts):
// these types say what a well-formed call looks like.

export type Availability = 'unavailable' | 'downloadable' | 'downloading' | 'available';
export type LanguageModelMessageRole = 'system' | 'user' | 'assistant';
export type LanguageModelMessageType = 'text' | 'image' | 'audio' | 'tool-call' | 'tool-response';
export type LanguageModelSamplingMode = 'most-predictable' | 'predictable' | 'balanced' | 'creative' | 'most-creative';

export interface LanguageModelMessageContent {
  type: LanguageModelMessageType;
  value: unknown;
}

export interface LanguageModelMessage {
  role: LanguageModelMessageRole;
  content: string | LanguageModelMessageContent[];
  /** Only on a last assistant message: the model continues this text instead of starting a reply. */
  prefix?: boolean;
}

/** A string is one user message. */
export type LanguageModelPrompt = string | LanguageModelMessage[];

export interface LanguageModelExpected {
  type: LanguageModelMessageType;
  languages?: string[];
}

export interface LanguageModelTool {
  name: string;
  description: string;
  inputSchema: object;
  execute: (...args: unknown[]) => Promise<string>;
}

export interface LanguageModelCreateCoreOptions {
  /** Legacy (extension contexts in Chrome): the top-K of sampling; clamped to params().maxTopK. */
  topK?: number;
  /** Legacy (extension contexts in Chrome): the sampling temperature; clamped to params().maxTemperature. */
  temperature?: number;
  samplingMode?: LanguageModelSamplingMode;
  expectedInputs?: LanguageModelExpected[];
  expectedOutputs?: LanguageModelExpected[];
  tools?: LanguageModelTool[];
}

/** What `monitor` is given: downloadprogress events (ProgressEvent, loaded 0 .. 1, total 1) fire on it. */
export type CreateMonitor = EventTarget;
export type CreateMonitorCallback = (monitor: CreateMonitor) => void;

export interface LanguageModelCreateOptions extends LanguageModelCreateCoreOptions {
  signal?: AbortSignal;
  monitor?: CreateMonitorCallback;
  initialPrompts?: LanguageModelMessage[];
}

export interface LanguageModelPromptOptions {
  /** A JSON schema object or a RegExp the response must match. */
  responseConstraint?: object;
  omitResponseConstraintInput?: boolean;
  signal?: AbortSignal;
}

export interface LanguageModelAppendOptions {
  signal?: AbortSignal;
}

export interface LanguageModelCloneOptions {
  signal?: AbortSignal;
}

export interface LanguageModelParams {
  readonly defaultTopK: number;
  readonly maxTopK: number;
  readonly defaultTemperature: number;
  readonly maxTemperature: number;
}

/** A message after validation: text only (this engine reads text), role checked. */
export interface CanonicalMessage {
  role: LanguageModelMessageRole;
  content: string;
  prefix: boolean;
}
