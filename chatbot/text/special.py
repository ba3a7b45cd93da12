"""Special tokens shared by the tokenizer, the vocabulary and PII redaction.

Redaction placeholders are single tokens in every language so the model can learn to write them and the
tokenizer never splits them.
"""

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPEAKER_TOKENS = {"customer": "<customer>", "agent": "<agent>", "bot": "<agent>", "system": "<system>"}
PLACEHOLDERS = ("<EMAIL>", "<PHONE>", "<CARD>", "<URL>", "<ADDRESS>", "<NAME>", "<ACCOUNT>", "<ZIP>", "<PII>")


def language_token(language: str) -> str:
    return f"<lang:{language}>"
