"""What a scan or an evaluation leaves behind for people: the HTML and CSV reports
(:mod:`.html`), the evaluation's plots and Table I (:mod:`.plots`), and the checks and atomic
writes every output file goes through (:mod:`.files`)."""
