"""What int8 quantization runs through the fp32 model to find each layer's outlier input
columns (``models/int8.py``). The columns are a property of the model (its norms' weights,
its massive activations), not of the data: generic text finds the same ones, and on SMS
spam and SST-2 it did as well as the task's own training texts (bench/int8.py). Varied on
purpose: chat, a short message, a review, news, a question, numbers, a URL, code."""

CALIBRATION_TEXTS: tuple[str, ...] = (
    "Hey, are we still meeting for lunch tomorrow? Let me know by tonight.",
    "URGENT! You have won a 1,000 cash prize. Call 09061701461 now to claim, T&Cs apply.",
    "The film was far too long, but the acting was superb and the ending made me cry.",
    "Shares in the carmaker fell 4.2% on Tuesday after it cut its forecast for the year.",
    "How many kilometres is it from Paris to Berlin by train?",
    "Please find the invoice attached: order #40312, due 15 March 2024, total EUR 89.90.",
    "Read the full guide at https://example.org/docs/setup?lang=en before you start.",
    "def mean(xs): return sum(xs) / len(xs)  # fails on an empty list",
)
