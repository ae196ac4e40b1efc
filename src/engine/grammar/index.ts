export { Grammars, Constraint, CompiledConstraint, GrammarError, type GrammarSpec, type MaskStats } from './grammars.js';
export { locateXGrammarScript, provideXGrammar } from './xgrammar.js';
