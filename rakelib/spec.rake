# frozen_string_literal: true

desc "Run the RSpec suite (compile first)"
task spec: :compile do
  sh "rspec"
end
