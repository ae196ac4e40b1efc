export { toolCallFormat, toolGrammar, toolSystemPrompt, callText, FORMATS, type ToolCallFormat, type ToolChoice, type ToolDefinition } from './tool-format.js';
export { parseToolOutput, ToolCallStream, type ParsedCall, type ParsedOutput, type ToolCallDelta } from './tool-parser.js';
