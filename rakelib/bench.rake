# frozen_string_literal: true

desc "Emit benchmarks (bench/emit.rb); results go to docs/BENCHMARKS.md by hand"
task bench: :compile do
  ruby "-Ilib", "bench/emit.rb"
end
