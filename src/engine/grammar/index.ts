export { Grammars, Constraint, CompiledConstraint, GrammarError, type GrammarSpec, type MaskStats } from './grammars.js';
export { provideXGrammar } from './xgrammar.js';
